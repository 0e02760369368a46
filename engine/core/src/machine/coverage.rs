//! Transition coverage (after temporal sdk-core's): the machine notes the id of each row
//! of the `//!` transition tables that it takes, so that a test can report the rows that
//! no test reaches.
//!
//! Only the crate's own tests note anything: outside `cfg(test)` [`took`] is empty. The
//! notes go to a per-thread recorder that [`rows_taken`] switches on around a closure, so
//! that tests running in parallel do not see each other's rows.
//!
//! No transition rows: nothing here changes the state.

/// Notes that the machine took the row `id` of a transition table.
#[cfg(not(test))]
#[inline(always)]
pub(super) fn took(_id: &'static str) {}

#[cfg(test)]
pub(super) use recorder::{rows_taken, took};

#[cfg(test)]
mod recorder {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    thread_local! {
        static TAKEN: RefCell<Option<BTreeSet<&'static str>>> = const { RefCell::new(None) };
    }

    /// Notes that the machine took the row `id` of a transition table.
    pub(in crate::machine) fn took(id: &'static str) {
        TAKEN.with(|taken| {
            if let Some(rows) = taken.borrow_mut().as_mut() {
                rows.insert(id);
            }
        });
    }

    /// Runs `run` and returns the rows the machine took on this thread meanwhile.
    pub(in crate::machine) fn rows_taken<T>(
        run: impl FnOnce() -> T,
    ) -> (T, BTreeSet<&'static str>) {
        let outer = TAKEN.with(|taken| taken.replace(Some(BTreeSet::new())));
        let result = run();
        let rows = TAKEN.with(|taken| taken.replace(outer)).unwrap_or_default();
        TAKEN.with(|taken| {
            if let Some(outer) = taken.borrow_mut().as_mut() {
                outer.extend(rows.iter().copied());
            }
        });
        (result, rows)
    }
}
