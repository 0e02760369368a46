//! Unit tests of the Canto connector: approval states, dates, and the upload flow's
//! pieces (S3 errors, the form, the status answer, the current version, the file source).

use super::upload::*;
use super::*;

#[test]
fn approval_statuses_map_and_missing_is_unknown() {
    assert_eq!(approval_state(Some("Approved")), ApprovalState::Approved);
    assert_eq!(approval_state(Some("Pending")), ApprovalState::Pending);
    assert_eq!(
        approval_state(Some("Restricted")),
        ApprovalState::Restricted
    );
    assert_eq!(approval_state(Some("Expired")), ApprovalState::Unknown);
    assert_eq!(approval_state(None), ApprovalState::Unknown);
}

fn version_args() -> CreateVersionArgs {
    CreateVersionArgs {
        scheme: "image".to_owned(),
        asset_id: "c-1".to_owned(),
        file_name: "spot.png".to_owned(),
        content_base64: Some("AQID".to_owned()),
        source_url: None,
        comment: None,
    }
}

#[test]
fn s3_errors_read_as_code_and_message() {
    let xml = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>\
               <Message>Invalid according to Policy: Policy expired &amp; gone</Message></Error>";
    assert_eq!(
        s3_message(xml).unwrap(),
        "AccessDenied: Invalid according to Policy: Policy expired & gone"
    );
    assert_eq!(
        s3_message(r#"{"status":"error","message":"rate limit"}"#).unwrap(),
        "rate limit"
    );
    assert_eq!(s3_message("  Bad gateway ").unwrap(), "Bad gateway");
    assert!(s3_message("").is_none());
}

#[test]
fn upload_form_keeps_the_signing_fields_and_adds_ours() {
    let setting = json!({"url": "/_s3/bucket", "key": "f/${filename}", "acl": "private",
        "Policy": "cG9saWN5", "x-amz-Signature": "sig", "x-amz-date": "20260101T000000Z",
        "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": "AKIA/20260101/eu-central-1/s3/aws4_request",
        "x-amz-meta-tag": "", "x-amz-meta-id": "", "unrelated": "dropped"});
    let (url, form) = upload_form(&setting, &version_args(), |path| {
        format!("https://acme.canto.de{path}")
    })
    .unwrap();
    assert_eq!(url.as_str(), "https://acme.canto.de/_s3/bucket");
    let names: Vec<&str> = form.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "key",
            "acl",
            "Policy",
            "x-amz-date",
            "x-amz-algorithm",
            "x-amz-credential",
            "x-amz-Signature",
            "x-amz-meta-tag",
            "x-amz-meta-scheme",
            "x-amz-meta-file_name",
            "x-amz-meta-id",
            "x-amz-meta-refer_id"
        ]
    );
    let value = |name: &str| {
        form.iter()
            .find(|(field, _)| field == name)
            .unwrap()
            .1
            .as_str()
    };
    assert_eq!(value("x-amz-meta-refer_id"), "c-1");
    assert_eq!(value("x-amz-meta-id"), "c-1");
    assert_eq!(value("x-amz-meta-file_name"), "spot.png");

    let unsigned = json!({"url": "https://s3.example.com/b", "key": "k", "Policy": "p"});
    let error = upload_form(&unsigned, &version_args(), str::to_owned).unwrap_err();
    assert!(error.message().contains("Signature"), "{error}");
    let ftp = json!({"url": "ftp://s3.example.com/b", "key": "k", "Policy": "p", "Signature": "s"});
    assert_eq!(
        upload_form(&ftp, &version_args(), str::to_owned)
            .unwrap_err()
            .code(),
        "invalid_response"
    );
}

#[test]
fn upload_status_is_the_newest_upload_of_that_file_to_that_content() {
    let answer = json!({"found": 4, "results": [
        {"name": "spot.png", "time": "20260301100000000", "status": "Done", "scheme": "image", "id": "c-1"},
        {"name": "spot.png", "time": "20260301120000000", "status": "Initial", "scheme": "image", "id": "c-1"},
        {"name": "other.png", "time": "20260301130000000", "status": "Error", "scheme": "image", "id": "c-1"},
        {"name": "spot.png", "time": "20260301140000000", "status": "Error", "scheme": "image", "id": "c-2"},
    ]});
    assert_eq!(upload_status(&answer, &version_args()), Some("Initial"));
    assert_eq!(
        upload_status(&json!({"found": 0, "results": []}), &version_args()),
        None
    );
}

#[test]
fn current_version_is_the_marked_one_else_the_last() {
    let content = json!({"versionHistory": [
        {"version": "1", "currentVersion": false}, {"version": 2, "currentVersion": true},
        {"version": "3", "currentVersion": false}]});
    let (current, count) = current_version(&content).unwrap();
    assert_eq!(
        (text_of(&current["version"]).unwrap().as_str(), count),
        ("2", 3)
    );
    let unmarked = json!({"versionHistory": [{"version": "1"}, {"version": "2"}]});
    assert_eq!(current_version(&unmarked).unwrap().0["version"], "2");
    assert!(current_version(&json!({"versionHistory": []})).is_err());
}

#[test]
fn file_source_needs_exactly_one_valid_source() {
    let decoded = version_args().file_source().unwrap();
    assert!(matches!(decoded, FileSource::Inline(bytes) if bytes == [1, 2, 3]));
    let mut both = version_args();
    both.source_url = Some("https://example.com/a.png".to_owned());
    assert!(both.file_source().is_err());
    let mut neither = version_args();
    neither.content_base64 = None;
    assert!(neither.file_source().is_err());
    let mut empty = version_args();
    empty.content_base64 = Some("  ".to_owned());
    let error = empty.file_source().err().unwrap();
    assert!(error.message().contains("1 to"), "{error}");
}

#[test]
fn canto_dates_are_read() {
    let instant = canto_instant("20150415063836418", false).unwrap();
    assert_eq!(instant.to_rfc3339(), "2015-04-15T06:38:36+00:00");
    assert!(canto_instant("soon", false).is_none());
}
