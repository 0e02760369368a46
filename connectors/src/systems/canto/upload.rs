//! Canto's `create_version`: Canto's upload flow (`canto.md` #8): it checks that the content
//! exists, takes the file from `content_base64` or fetches `source_url` (without
//! credentials, at most [`MAX_FILE_BYTES`]), asks `GET /api/v1/upload/setting` for the S3
//! POST form, and posts the form's fields (`key`, `acl`, `AWSAccessKeyId`, `Policy`,
//! `Signature`, or the SigV4 `x-amz-*` set on `canto.de`, and its `x-amz-meta-*` defaults)
//! with `x-amz-meta-scheme`, `x-amz-meta-file_name`, `x-amz-meta-id` and
//! `x-amz-meta-refer_id` (the content id, which makes the upload a new version of it \[I\])
//! and the file, last, to the form's `url` \[V\]. The S3 POST carries no Canto token; its
//! errors are S3's XML `<Error><Code>…<Message>…` and are scrubbed of the form's policy,
//! signature and key id. It then polls `GET /api/v1/upload/status?hours=1` (`{found,
//! results: [{name, time, status, scheme, id}]}` \[V\], `Initial` → `Done` or `Error`) for
//! the newest upload of that file name to that content, every `upload_poll_interval` until
//! `upload_wait` has passed (then a retryable `upload_pending` naming the upload), reads the
//! content again and reports its current version; a `comment` goes on that version through
//! `POST /api/v1/version/comment`. The S3 POST carries the action's idempotency key, on which
//! the simulator deduplicates; real S3 ignores it, so a retry after a lost response or an
//! `upload_pending` uploads the file again there.

use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    CantoConnector, FORM_FIELDS, IDEMPOTENCY_HEADER, MAX_FILE_BYTES, SENSITIVE_FORM_FIELDS,
    message_of,
};
use crate::connector::{Error, Result};
use crate::http::{self, Redactor};
use crate::rest::Request;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateVersionArgs {
    pub(super) scheme: String,
    pub(super) asset_id: String,
    pub(super) file_name: String,
    pub(super) content_base64: Option<String>,
    pub(super) source_url: Option<String>,
    pub(super) comment: Option<String>,
}

/// Where the file of a new version comes from.
pub(super) enum FileSource {
    Inline(Vec<u8>),
    Url(reqwest::Url),
}

impl CreateVersionArgs {
    /// Checks the arguments the schema cannot: exactly one file source, valid base64 or an
    /// http(s) URL, a file within [`MAX_FILE_BYTES`].
    pub(super) fn file_source(&self) -> Result<FileSource> {
        let invalid =
            |message: String| Error::invalid_arguments(format!("canto.create_version: {message}"));
        match (&self.content_base64, &self.source_url) {
            (Some(text), None) => {
                let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                if compact.len() / 4 * 3 > MAX_FILE_BYTES + 3 {
                    return Err(invalid(format!(
                        "content_base64 holds more than {MAX_FILE_BYTES} bytes"
                    )));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|error| invalid(format!("content_base64 is not base64: {error}")))?;
                if bytes.is_empty() || bytes.len() > MAX_FILE_BYTES {
                    return Err(invalid(format!(
                        "content_base64 must hold 1 to {MAX_FILE_BYTES} bytes, not {}",
                        bytes.len()
                    )));
                }
                Ok(FileSource::Inline(bytes))
            }
            (None, Some(url)) => match reqwest::Url::parse(url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(FileSource::Url(url)),
                Ok(_) => Err(invalid("source_url is not an http(s) URL".to_owned())),
                Err(error) => Err(invalid(format!("source_url is not a URL: {error}"))),
            },
            _ => Err(invalid(
                "give the file as exactly one of content_base64 or source_url".to_owned(),
            )),
        }
    }

    /// How errors and the output name the upload.
    pub(super) fn describe(&self) -> String {
        format!(
            "upload {:?} (new version of {}/{})",
            self.file_name, self.scheme, self.asset_id
        )
    }
}

/// Prefixes an error's message, keeping its class, code and retry hint.
pub(super) fn prefixed(error: Error, prefix: &str) -> Error {
    error.map_message(|message| format!("{prefix}: {message}"))
}

/// The text of the first `<tag>…</tag>` in `xml`, unescaped.
pub(super) fn xml_element(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// S3's message from an error body: `Code: Message` of its XML error document, else
/// Canto's JSON message, else the text.
pub(super) fn s3_message(body: &str) -> Option<String> {
    if let Some(code) = xml_element(body, "Code") {
        return Some(match xml_element(body, "Message") {
            Some(message) => format!("{code}: {message}"),
            None => code,
        });
    }
    let text = body.trim();
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| message_of(&value))
        .or_else(|| (!text.is_empty()).then(|| text.to_owned()))
}

/// The S3 form of Canto's upload setting for `args`: the absolute `url` (a relative one is
/// resolved by `absolute`) and the fields, in order, without the file.
pub(super) fn upload_form(
    setting: &Value,
    args: &CreateVersionArgs,
    absolute: impl Fn(&str) -> String,
) -> Result<(reqwest::Url, Vec<(String, String)>)> {
    let text = |name: &str| setting.get(name).and_then(Value::as_str);
    let missing = |name: &str| {
        Error::permanent(
            "invalid_response",
            format!("canto upload setting: response has no {name}"),
        )
    };
    let url = text("url").ok_or_else(|| missing("url"))?;
    let url = if url.starts_with('/') {
        absolute(url)
    } else {
        url.to_owned()
    };
    let url = reqwest::Url::parse(&url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .ok_or_else(|| {
            Error::permanent(
                "invalid_response",
                "canto upload setting: url is not an http(s) URL",
            )
        })?;
    for name in ["key", "Policy"] {
        text(name).ok_or_else(|| missing(name))?;
    }
    if text("Signature").is_none() && text("x-amz-Signature").is_none() {
        return Err(missing("Signature (or x-amz-Signature)"));
    }
    let ours = [
        ("x-amz-meta-scheme", args.scheme.as_str()),
        ("x-amz-meta-file_name", args.file_name.as_str()),
        ("x-amz-meta-id", args.asset_id.as_str()),
        ("x-amz-meta-refer_id", args.asset_id.as_str()),
    ];
    let mut form: Vec<(String, String)> = FORM_FIELDS
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), text(name)?.to_owned())))
        .collect();
    if let Some(fields) = setting.as_object() {
        for (name, value) in fields {
            if name.starts_with("x-amz-meta-")
                && !ours.iter().any(|(field, _)| field == name)
                && let Some(value) = value.as_str()
            {
                form.push((name.clone(), value.to_owned()));
            }
        }
    }
    form.extend(
        ours.iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
    );
    Ok((url, form))
}

/// The status of the newest upload of `args.file_name` to `args`' content in Canto's
/// upload status answer, if it lists one.
pub(super) fn upload_status<'a>(answer: &'a Value, args: &CreateVersionArgs) -> Option<&'a str> {
    answer["results"]
        .as_array()?
        .iter()
        .filter(|result| {
            result["id"] == args.asset_id.as_str()
                && result["name"] == args.file_name.as_str()
                && result["scheme"]
                    .as_str()
                    .is_none_or(|scheme| scheme.is_empty() || scheme == args.scheme)
        })
        .max_by_key(|result| result["time"].as_str().unwrap_or_default().to_owned())
        .and_then(|result| result["status"].as_str())
}

/// The current entry of a content's `versionHistory` (the one marked `currentVersion`,
/// else the last) and the number of versions.
pub(super) fn current_version(content: &Value) -> Result<(&Value, usize)> {
    let versions = content["versionHistory"]
        .as_array()
        .filter(|versions| !versions.is_empty())
        .ok_or_else(|| {
            Error::permanent(
                "invalid_response",
                "canto content: versionHistory is empty after the upload",
            )
        })?;
    let current = versions
        .iter()
        .rev()
        .find(|version| version["currentVersion"] == true || version["currentVersion"] == "true")
        .or_else(|| versions.last())
        .ok_or_else(|| Error::permanent("invalid_response", "canto content: no current version"))?;
    Ok((current, versions.len()))
}

/// A JSON string or number as text.
pub(super) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

impl CantoConnector {
    /// Fetches `url` without credentials, within [`MAX_FILE_BYTES`].
    pub(super) async fn fetch_source(&self, url: reqwest::Url) -> Result<Vec<u8>> {
        const PREFIX: &str = "canto.create_version: source_url";
        let mut response = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|error| prefixed(Error::from_reqwest(&error), PREFIX))?;
        if !response.status().is_success() {
            let error = http::error_for_response(response, &Redactor::new()).await;
            return Err(prefixed(error, PREFIX));
        }
        let body = http::read_body(&mut response, MAX_FILE_BYTES)
            .await
            .map_err(|error| prefixed(error, PREFIX))?;
        if body.is_empty() {
            return Err(Error::permanent(
                "invalid_arguments",
                format!("{PREFIX}: answered no bytes"),
            ));
        }
        Ok(body)
    }

    /// Posts the form and the file to S3, with the action's idempotency key and no token.
    pub(super) async fn post_to_s3(
        &self,
        url: reqwest::Url,
        form: Vec<(String, String)>,
        file: Vec<u8>,
        args: &CreateVersionArgs,
        key: &str,
    ) -> Result<()> {
        let what = format!("canto {}: S3", args.describe());
        let mut redactor = Redactor::new();
        for (name, value) in &form {
            if SENSITIVE_FORM_FIELDS.contains(&name.as_str()) {
                redactor.add(value);
            }
        }
        let mut multipart = reqwest::multipart::Form::new();
        for (name, value) in form {
            multipart = multipart.text(name, value);
        }
        let part = reqwest::multipart::Part::bytes(file)
            .file_name(args.file_name.clone())
            .mime_str("application/octet-stream")
            .map_err(|error| Error::permanent("invalid_request", error.to_string()))?;
        let mut response = self
            .http
            .post(url)
            .timeout(self.timeout)
            .header(IDEMPOTENCY_HEADER, key)
            .multipart(multipart.part("file", part))
            .send()
            .await
            .map_err(|error| prefixed(Error::from_reqwest(&error), &what))?;
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        // The body is read to its end, so that a connection lost mid-response fails the
        // attempt; only as much is kept as an error message can use.
        let limit = http::MAX_ERROR_MESSAGE_CHARS * 8;
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = limit.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                // An error status says enough without the rest of its body.
                Err(_) if !status.is_success() => break,
                Err(error) => return Err(prefixed(Error::from_reqwest(&error), &what)),
            }
        }
        if status.is_success() {
            // S3's 204, or 201 with a `PostResponse`: nothing in it is needed.
            return Ok(());
        }
        let message = s3_message(&String::from_utf8_lossy(&body))
            .unwrap_or_else(|| format!("http status {status}"));
        let message = http::truncate(&redactor.redact(&message), http::MAX_ERROR_MESSAGE_CHARS);
        Err(Error::from_status(
            status.as_u16(),
            retry_after,
            format!("{what} answered {message}"),
        ))
    }

    /// Polls the upload status until the upload is processed or `upload_wait` has passed.
    pub(super) async fn wait_for_processing(&self, args: &CreateVersionArgs) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.upload_wait;
        loop {
            let answer = self
                .client
                .call(&Request::get("/api/v1/upload/status").query("hours", 1))
                .await?;
            match upload_status(&answer, args)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("done") => return Ok(()),
                Some("error") => {
                    return Err(Error::permanent(
                        "upload_failed",
                        format!("canto could not process the {}", args.describe()),
                    ));
                }
                _ => {}
            }
            if tokio::time::Instant::now() + self.upload_poll_interval > deadline {
                return Err(Error::retryable(
                    "upload_pending",
                    format!(
                        "canto has not processed the {} within {}",
                        args.describe(),
                        humantime::format_duration(self.upload_wait)
                    ),
                ));
            }
            tokio::time::sleep(self.upload_poll_interval).await;
        }
    }

    pub(super) async fn create_version(&self, args: CreateVersionArgs, key: &str) -> Result<Value> {
        let source = args.file_source()?;
        // An unknown content id fails here, with Canto's message, before anything is sent.
        self.content(&args.scheme, &args.asset_id).await?;
        let file = match source {
            FileSource::Inline(bytes) => bytes,
            FileSource::Url(url) => self.fetch_source(url).await?,
        };
        let setting = self
            .client
            .call(&Request::get("/api/v1/upload/setting"))
            .await?;
        let (url, form) = upload_form(&setting, &args, |path| self.client.url(path))?;
        self.post_to_s3(url, form, file, &args, key).await?;
        self.wait_for_processing(&args).await?;
        let content = self.content(&args.scheme, &args.asset_id).await?;
        let (version, count) = current_version(&content)?;
        let version_id = text_of(&version["version"])
            .or_else(|| text_of(&version["no"]))
            .ok_or_else(|| {
                Error::permanent(
                    "invalid_response",
                    "canto content: the current version has no version number",
                )
            })?;
        let created = version.get("created").cloned().unwrap_or(Value::Null);
        if let Some(comment) = &args.comment {
            // Its own key: the action's key already names the S3 POST.
            self.client
                .call(
                    &Request::new(Method::POST, "/api/v1/version/comment")
                        .json(json!({"scheme": args.scheme, "id": args.asset_id,
                                     "versionId": version_id, "comment": comment}))
                        .idempotent(IDEMPOTENCY_HEADER, &format!("{key}:comment"))
                        .text_ok(),
                )
                .await?;
        }
        Ok(json!({
            "asset_id": args.asset_id, "scheme": args.scheme, "version_id": version_id,
            "file_name": args.file_name, "versions": count, "created": created,
            "comment": args.comment,
        }))
    }
}
