//! "Did you mean ...?": the likely correction of a misspelt name (an action, a step id, a
//! field, a time zone), by edit distance, for the hints at the end of error messages.

/// The Levenshtein distance between two words, in characters.
fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.chars().enumerate() {
        let mut current = vec![row + 1; right.len() + 1];
        for (column, right_char) in right.iter().enumerate() {
            let substitution = previous[column] + usize::from(left_char != *right_char);
            current[column + 1] = substitution
                .min(previous[column + 1] + 1)
                .min(current[column] + 1);
        }
        previous = current;
    }
    previous[right.len()]
}

/// The candidate closest to `word`, if one is close enough to be a likely typo.
pub(super) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if let Some(exact) = candidates
        .iter()
        .find(|candidate| candidate.eq_ignore_ascii_case(word))
    {
        return Some(exact);
    }
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|candidate| {
            let whole = edit_distance(word, candidate);
            // A typo in the beginning of a longer name (`iconik.serch` for
            // `iconik.search_assets`) counts as close too.
            let prefix: String = candidate.chars().take(word.chars().count()).collect();
            let start = edit_distance(word, &prefix) + 1;
            (whole.min(start), *candidate)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// ` (did you mean "close"?)` when a candidate is close to `word`, else nothing.
pub(super) fn suggestion(word: &str, candidates: &[&str]) -> String {
    suggest(word, candidates)
        .map(|close| format!(" (did you mean {close:?}?)"))
        .unwrap_or_default()
}

/// The correction of `word`, or else the allowed names when there are few of them.
pub(super) fn suggestion_or_list(word: &str, candidates: &[&str]) -> String {
    match suggest(word, candidates) {
        Some(close) => format!(" (did you mean {close:?}?)"),
        None if !candidates.is_empty() && candidates.len() <= 16 => {
            format!(" (allowed: {})", candidates.join(", "))
        }
        None => String::new(),
    }
}
