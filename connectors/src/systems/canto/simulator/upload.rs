//! The Canto simulator's upload flow (`canto.md` #8): the upload setting (an S3 POST form
//! signed by the simulator), the simulated S3 bucket that checks the form as S3 does, the
//! processing of an upload into a new version of its content, and the upload status.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{CantoState, Context, emit, error_value, now, render_error};
use crate::simulator::http::json_object;
use crate::simulator::{Change, SimContext, idempotency_key};

/// The simulated S3 bucket, served on the simulator's own address \[D\].
pub const S3_PATH: &str = "/_s3/canto-uploads";

/// The bucket's name, as S3 policies name it.
pub(super) const BUCKET: &str = "canto-uploads";

/// The access key id every upload form carries \[D\].
pub(super) const ACCESS_KEY_ID: &str = "AKIASIMULATEDCANTO01";

/// What the simulator signs upload policies with \[D\]; never leaves the simulator.
pub(super) const SIGNING_SECRET: &str = "canto-simulator-upload-signing-secret";

/// The largest file the simulated bucket takes (the policy's `content-length-range`).
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// How long after its upload a file is processed into a new version \[D\].
pub const PROCESSING_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// How long an upload form stays valid (Canto: 5 hours \[V\]).
pub(super) const FORM_VALIDITY_HOURS: i64 = 5;

/// The `x-amz-meta-*` fields the form allows, each with any value.
pub(super) const META_FIELDS: [&str; 6] =
    ["scheme", "album_id", "tag", "id", "file_name", "refer_id"];

/// The signature of a base64 policy: base64 of SHA-256 over the secret and the policy \[D\]
/// (S3's is an HMAC; the connector only echoes it).
pub(super) fn sign(policy: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(SIGNING_SECRET.as_bytes())
        .chain_update(policy.as_bytes())
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// `GET /api/v1/upload/setting`: a fresh S3 POST form whose `url` is the simulated bucket
/// on the address the request came to, with a policy and signature to echo back.
pub(super) async fn upload_setting(headers: HeaderMap) -> Response {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1");
    let folder: String = rand::random::<[u8; 8]>()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let prefix = format!("{folder}/");
    let expiration = (chrono::Utc::now() + chrono::Duration::hours(FORM_VALIDITY_HOURS))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut conditions = vec![
        json!({"bucket": BUCKET}),
        json!(["starts-with", "$key", prefix]),
        json!({"acl": "private"}),
        json!(["starts-with", "$success_action_status", ""]),
        json!(["content-length-range", 1, MAX_UPLOAD_BYTES]),
    ];
    conditions.extend(
        META_FIELDS
            .iter()
            .map(|field| json!(["starts-with", format!("$x-amz-meta-{field}"), ""])),
    );
    let policy = base64::engine::general_purpose::STANDARD
        .encode(json!({"expiration": expiration, "conditions": conditions}).to_string());
    let signature = sign(&policy);
    axum::Json(json!({
        "url": format!("http://{host}{S3_PATH}"), "key": format!("{prefix}${{filename}}"),
        "acl": "private", "AWSAccessKeyId": ACCESS_KEY_ID, "Policy": policy, "Signature": signature,
        "x-amz-meta-scheme": "", "x-amz-meta-album_id": "", "x-amz-meta-tag": "",
        "x-amz-meta-id": "", "x-amz-meta-file_name": "",
    }))
    .into_response()
}

/// An S3 error: status, `Code` and `Message`.
pub(super) struct S3Error {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl S3Error {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn policy(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!("Invalid according to Policy: {message}"),
        )
    }
}

/// Escapes text for an XML element.
pub(super) fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// S3's error document: `<Error><Code>…</Code><Message>…</Message></Error>`.
pub(super) fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>\
         <RequestId>SIMULATED</RequestId></Error>",
        xml_text(code),
        xml_text(message)
    );
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}

/// The form fields (names compared case-insensitively, as S3 does) and the file.
pub(super) struct PostedForm {
    fields: Vec<(String, String)>,
    file_name: Option<String>,
    file: Option<Bytes>,
}

impl PostedForm {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn meta(&self, name: &str) -> String {
        self.get(&format!("x-amz-meta-{name}"))
            .unwrap_or_default()
            .to_owned()
    }
}

/// Reads the multipart body; like S3, fields after the file are ignored.
pub(super) async fn read_form(
    mut multipart: axum::extract::Multipart,
) -> Result<PostedForm, S3Error> {
    let malformed = |_| {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "MalformedPOSTRequest",
            "The body of your POST request is not well-formed multipart/form-data.",
        )
    };
    let mut form = PostedForm {
        fields: Vec::new(),
        file_name: None,
        file: None,
    };
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name.eq_ignore_ascii_case("file") {
            form.file_name = field.file_name().map(str::to_owned);
            form.file = Some(field.bytes().await.map_err(malformed)?);
            break;
        }
        let value = field.text().await.map_err(malformed)?;
        form.fields.push((name, value));
    }
    Ok(form)
}

/// Checks the form as S3 checks a browser POST: the access key, the policy's signature and
/// expiry, that every condition holds, and that every field is covered by a condition.
pub(super) fn check_policy(form: &PostedForm, size: usize) -> Result<(), S3Error> {
    let required = |name: &str| {
        form.get(name).ok_or_else(|| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                format!(
                    "Bucket POST must contain a field named '{name}'.  If it is specified, \
                     please check the order of the fields."
                ),
            )
        })
    };
    let key_id = required("AWSAccessKeyId")?;
    let policy = required("Policy")?;
    let signature = required("Signature")?;
    required("key")?;
    if key_id != ACCESS_KEY_ID {
        return Err(S3Error::new(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        ));
    }
    if signature != sign(policy) {
        return Err(S3Error::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method.",
        ));
    }
    let document = base64::engine::general_purpose::STANDARD
        .decode(policy)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .ok_or_else(|| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidPolicyDocument",
                "Invalid Policy: Invalid JSON.",
            )
        })?;
    let expired = document["expiration"]
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .is_none_or(|expiration| expiration < chrono::Utc::now());
    if expired {
        return Err(S3Error::policy("Policy expired."));
    }
    let conditions = document["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut covered = vec![
        "awsaccesskeyid".to_owned(),
        "policy".to_owned(),
        "signature".to_owned(),
    ];
    for condition in &conditions {
        let failed = || S3Error::policy(format!("Policy Condition failed: {condition}"));
        if let Some(exact) = condition.as_object() {
            for (name, wanted) in exact {
                if name == "bucket" {
                    continue;
                }
                covered.push(name.to_ascii_lowercase());
                if form.get(name) != wanted.as_str() {
                    return Err(failed());
                }
            }
        } else if let Some([kind, low, high]) = condition.as_array().map(Vec::as_slice)
            && kind == "content-length-range"
        {
            let within = low.as_u64().is_some_and(|low| size as u64 >= low)
                && high.as_u64().is_some_and(|high| size as u64 <= high);
            if !within {
                return Err(S3Error::new(
                    StatusCode::BAD_REQUEST,
                    "EntityTooLarge",
                    "Your proposed upload exceeds the maximum allowed size",
                ));
            }
        } else if let Some([operator, field, value]) = condition.as_array().map(Vec::as_slice) {
            let name = field.as_str().unwrap_or_default().trim_start_matches('$');
            covered.push(name.to_ascii_lowercase());
            let value = value.as_str().unwrap_or_default();
            let holds = match (operator.as_str(), form.get(name)) {
                // A starts-with condition with an empty prefix allows the field to be absent.
                (Some("starts-with"), None) => value.is_empty(),
                (Some("starts-with"), Some(given)) => given.starts_with(value),
                (Some("eq"), given) => given == Some(value),
                _ => false,
            };
            if !holds {
                return Err(failed());
            }
        }
    }
    let extra: Vec<&str> = form
        .fields
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| {
            let lower = name.to_ascii_lowercase();
            !lower.starts_with("x-ignore-") && !covered.contains(&lower)
        })
        .collect();
    if !extra.is_empty() {
        return Err(S3Error::policy(format!(
            "Extra input fields: {}",
            extra.join(", ")
        )));
    }
    Ok(())
}

/// The simulated S3 bucket: a browser-style POST of the upload form and the file. A valid
/// upload is recorded (deduplicated on the request's idempotency key) and answered as S3
/// does, 204 without a body or, with `success_action_status=201`, 201 and an XML
/// `PostResponse`; processing into a new version follows after [`PROCESSING_DELAY`].
pub(super) async fn s3_upload(
    State(context): Context,
    headers: HeaderMap,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let Ok(multipart) = multipart else {
        return s3_error(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "Bucket POST must be of the enclosure-type multipart/form-data",
        );
    };
    let form = match read_form(multipart).await {
        Ok(form) => form,
        Err(error) => return s3_error(error.status, error.code, &error.message),
    };
    let Some(file) = &form.file else {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "POST requires exactly one file upload per request.",
        );
    };
    if let Err(error) = check_policy(&form, file.len()) {
        return s3_error(error.status, error.code, &error.message);
    }
    let part_name = form.file_name.clone().unwrap_or_default();
    let key = form
        .get("key")
        .unwrap_or_default()
        .replace("${filename}", &part_name);
    let name = [form.meta("file_name"), part_name]
        .into_iter()
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| key.rsplit('/').next().unwrap_or_default().to_owned());
    let created = form.get("success_action_status") == Some("201");
    let upload = json!({
        "key": key, "name": name, "scheme": form.meta("scheme"), "id": form.meta("id"),
        "refer_id": form.meta("refer_id"), "size": file.len(), "status": "Initial", "time": now(),
        "content_base64": base64::engine::general_purpose::STANDARD.encode(file),
        "received_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    });
    let change = Change::new(
        "upload.received",
        "POST",
        S3_PATH,
        idempotency_key(&headers),
    );
    let reply = context.store.change(change, |state| {
        state.uploads.push(upload);
        let (status, body) = if created {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("127.0.0.1");
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>http://{}{S3_PATH}/{}</Location>\
                 <Bucket>{BUCKET}</Bucket><Key>{}</Key><ETag>\"simulated\"</ETag></PostResponse>",
                xml_text(host),
                xml_text(&key),
                xml_text(&key)
            );
            (StatusCode::CREATED, json!(xml))
        } else {
            (StatusCode::NO_CONTENT, Value::Null)
        };
        Ok((status, body, Some(key.clone())))
    });
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !status.is_success() {
        let message = reply.body["message"].as_str().unwrap_or("request refused");
        return s3_error(status, "InvalidRequest", message);
    }
    if !reply.replayed {
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            tokio::time::sleep(PROCESSING_DELAY).await;
            process_due(&context);
        });
    }
    match reply.body.as_str() {
        Some(xml) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/xml")],
            xml.to_owned(),
        )
            .into_response(),
        None => status.into_response(),
    }
}

/// Processes every upload that has waited [`PROCESSING_DELAY`], unless processing is
/// paused. Runs after each upload and on every status query (which also covers uploads
/// left `Initial` by a restart); an upload already processed is left alone.
pub(super) fn process_due(context: &SimContext<CantoState>) {
    let now = chrono::Utc::now();
    let delay = chrono::Duration::from_std(PROCESSING_DELAY).unwrap_or_default();
    let due: Vec<String> = context.store.read(|state| {
        if state.processing_paused {
            return Vec::new();
        }
        state
            .uploads
            .iter()
            .filter(|upload| upload["status"] == "Initial")
            .filter(|upload| {
                upload["received_at"]
                    .as_str()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .is_none_or(|at| at + delay <= now)
            })
            .filter_map(|upload| upload["key"].as_str().map(str::to_owned))
            .collect()
    });
    for key in due {
        process(context, &key);
    }
}

/// Turns one upload into a new version of the content its `x-amz-meta-refer_id` names, or
/// marks it `Error` when there is no such content (only new versions are simulated \[D\]).
pub(super) fn process(context: &SimContext<CantoState>, key: &str) {
    let target = context.store.read(|state| {
        let upload = state.uploads.iter().find(|upload| upload["key"] == key)?;
        let scheme = upload["scheme"].as_str().unwrap_or_default();
        let refer = upload["refer_id"].as_str().unwrap_or_default();
        if refer.is_empty() {
            return Some(None);
        }
        let found = state
            .contents
            .iter()
            .find(|(_, content)| {
                content["id"] == refer && (scheme.is_empty() || content["scheme"] == scheme)
            })
            .map(|(content, _)| content.clone());
        Some(found)
    });
    let Some(target) = target else {
        return;
    };
    let action = if target.is_some() {
        "version.created"
    } else {
        "upload.failed"
    };
    let change = Change::new(action, "POST", S3_PATH, None);
    let reply = context.store.change(change, |state| {
        let upload = state
            .uploads
            .iter_mut()
            .find(|upload| upload["key"] == key && upload["status"] == "Initial")
            .ok_or_else(|| error_value(StatusCode::CONFLICT, "already processed"))?;
        let at = now();
        let Some(content_key) = &target else {
            upload["status"] = json!("Error");
            return Ok((
                StatusCode::OK,
                json!({"status": "Error"}),
                Some(key.to_owned()),
            ));
        };
        upload["status"] = json!("Done");
        let size = upload["size"].clone();
        let file = upload
            .as_object_mut()
            .and_then(|fields| fields.remove("content_base64"));
        let name = upload["name"].clone();
        let content = state
            .contents
            .get_mut(content_key)
            .ok_or_else(|| error_value(StatusCode::CONFLICT, "content gone"))?;
        let (scheme, id) = (content["scheme"].clone(), content["id"].clone());
        let versions = content["versionHistory"]
            .as_array_mut()
            .ok_or_else(|| error_value(StatusCode::CONFLICT, "no version history"))?;
        let next = versions
            .iter()
            .filter_map(|version| version["version"].as_str()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        for version in versions.iter_mut() {
            version["currentVersion"] = json!(false);
        }
        let (scheme, id) = (scheme.as_str().unwrap_or(""), id.as_str().unwrap_or(""));
        versions.push(json!({
            "no": next.to_string(), "version": next.to_string(), "currentVersion": true,
            "comment": "", "created": at, "time": at, "ownerName": "Sandbox Integration",
            "uri": {"preview": format!("/api_binary/v1/{scheme}/{id}/preview"),
                    "download": super::content::version_download(content_key, &next.to_string())},
        }));
        content["time"] = json!(at);
        content["lastUploaded"] = json!(at);
        content["size"] = json!(size.to_string());
        content["default"]["Date modified"] = json!(at);
        let uploaded = json!({"content_base64": file, "name": name});
        super::content::keep_upload(state, content_key, &next.to_string(), &uploaded);
        Ok((
            StatusCode::OK,
            json!({"version": next.to_string()}),
            Some(content_key.clone()),
        ))
    });
    if let (Some(content_key), 200) = (&target, reply.status) {
        emit(context, "Add New Version", content_key);
    }
}

/// `GET /api/v1/upload/status?hours=1..24`: the uploads of the last hours, newest first, as
/// `{found, results: [{name, time, status, scheme, id}]}`.
pub(super) async fn upload_status(
    State(context): Context,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let hours = match query.get("hours").map(|text| text.parse::<i64>()) {
        None => 1,
        Some(Ok(hours)) if (1..=24).contains(&hours) => hours,
        Some(_) => return render_error(StatusCode::BAD_REQUEST, "hours must be 1..24"),
    };
    process_due(&context);
    let since = chrono::Utc::now() - chrono::Duration::hours(hours);
    let results: Vec<Value> = context.store.read(|state| {
        state
            .uploads
            .iter()
            .rev()
            .filter(|upload| {
                upload["received_at"]
                    .as_str()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .is_some_and(|at| at >= since)
            })
            .map(|upload| {
                json!({"name": upload["name"], "time": upload["time"], "status": upload["status"],
                       "scheme": upload["scheme"], "id": upload["id"]})
            })
            .collect()
    });
    axum::Json(json!({"found": results.len(), "results": results})).into_response()
}

/// Pauses or resumes processing (`{"paused": bool}`), so a test can keep an upload
/// `Initial`; resuming processes what is due.
pub(super) async fn configure_processing(State(context): Context, body: Bytes) -> Response {
    let paused = match json_object(&body, render_error) {
        Ok(body) => match body["paused"].as_bool() {
            Some(paused) => paused,
            None => return render_error(StatusCode::BAD_REQUEST, "paused must be a boolean"),
        },
        Err(response) => return response,
    };
    let change = Change::new(
        "processing.configured",
        "PUT",
        "/_sim/canto/processing",
        None,
    );
    let reply = context.store.change(change, |state| {
        state.processing_paused = paused;
        Ok((StatusCode::OK, json!({"paused": paused}), None))
    });
    if !paused {
        process_due(&context);
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            tokio::time::sleep(PROCESSING_DELAY).await;
            process_due(&context);
        });
    }
    crate::simulator::reply(reply)
}
