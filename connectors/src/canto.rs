//! The `canto` connector: the Canto DAM REST API as described in `canto.md`: OAuth2 client
//! credentials at `POST <oauth>/oauth/api/oauth2/token` with `app_id`, `app_secret` and
//! `grant_type` in the query string, answered in camelCase (`accessToken`) \[V\]; then
//! `Authorization: Bearer` on `/api/v1/…` \[V\]. Content is addressed by scheme and id;
//! search pages with `start` + `limit` → `{results, found, limit}` \[V\]; metadata is
//! written with `PUT /api/v1/batch/edit`, answered with the text `success` \[V\]. Error
//! bodies are undocumented: the simulator's `{"status":"error","message":…}` \[D\] and plain
//! text are both read. State-changing requests carry our `X-Gridflow-Idempotency-Key` \[D\].
//!
//! `create_version` speaks Canto's upload flow (`canto.md` #8): it checks that the content
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

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::asset::{ApprovalState, RightsWindow, parse_instant};
use crate::config::CantoConfig;
use crate::connector::{ActionSpec, Connector, Error, Invocation, Result};
use crate::http::{self, Redactor, Secret};
use crate::rest::{Request, RestClient, TokenSource, parse_arguments, required, segment};
use crate::schema::{action, array_of, object, string};

/// The connector's name.
pub const NAME: &str = "canto";

/// The token path on the OAuth server.
pub const TOKEN_PATH: &str = "/oauth/api/oauth2/token";

const IDEMPOTENCY_HEADER: &str = "X-Gridflow-Idempotency-Key";

/// The largest file `create_version` uploads, given inline or fetched from `source_url`.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

/// The fields of Canto's upload setting that go into the S3 form as they are (`x-amz-meta-*`
/// defaults go too): signature version 2 on `canto.com`/`canto.global`, version 4 on
/// `canto.de` \[V\].
const FORM_FIELDS: [&str; 9] = [
    "key",
    "acl",
    "AWSAccessKeyId",
    "Policy",
    "Signature",
    "x-amz-date",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-Signature",
];

/// The form fields that are credentials of the upload, scrubbed from every S3 error.
const SENSITIVE_FORM_FIELDS: [&str; 5] = [
    "AWSAccessKeyId",
    "Policy",
    "Signature",
    "x-amz-credential",
    "x-amz-Signature",
];

const SCHEMES: [&str; 6] = [
    "image",
    "video",
    "audio",
    "document",
    "presentation",
    "other",
];

/// The credentials of the Canto connector.
#[derive(Debug, Clone)]
pub struct CantoCredentials {
    /// The App ID.
    pub app_id: Secret,
    /// The App Secret.
    pub app_secret: Secret,
}

impl CantoCredentials {
    /// Reads the variables named by `config`.
    pub fn from_environment(config: &CantoConfig) -> Result<Self, crate::config::Error> {
        Ok(Self {
            app_id: crate::config::credential("connectors.canto.app_id_env", &config.app_id_env)?,
            app_secret: crate::config::credential(
                "connectors.canto.app_secret_env",
                &config.app_secret_env,
            )?,
        })
    }
}

/// The Canto connector.
pub struct CantoConnector {
    client: RestClient,
    /// For the S3 POST and `source_url`, which get no Canto token.
    http: reqwest::Client,
    timeout: Duration,
    upload_wait: Duration,
    upload_poll_interval: Duration,
    valid_from_field: String,
    valid_until_field: String,
    actions: Vec<ActionSpec>,
}

/// Client credentials against the OAuth server, which has its own host.
struct ClientCredentials {
    oauth: RestClient,
    credentials: CantoCredentials,
}

#[async_trait]
impl TokenSource for ClientCredentials {
    async fn fetch(&self, _client: &RestClient) -> Result<Secret> {
        let request = Request::new(Method::POST, TOKEN_PATH)
            .query("app_id", self.credentials.app_id.expose())
            .query("app_secret", self.credentials.app_secret.expose())
            .query("grant_type", "client_credentials");
        let answer = self.oauth.call_unauthenticated(&request, None).await?;
        let token = required(&answer, "/accessToken", "canto token")?
            .as_str()
            .ok_or_else(|| {
                Error::permanent(
                    "invalid_response",
                    "canto token: accessToken is not a string",
                )
            })?;
        Ok(Secret::new(token))
    }
}

/// The system's message: `message` (our simulator's shape), else OAuth's
/// `error_description` or `error`.
fn message_of(body: &Value) -> Option<String> {
    ["message", "error_description", "error"]
        .iter()
        .find_map(|field| body.get(*field).and_then(Value::as_str))
        .map(str::to_owned)
}

/// Canto's `approvalStatus` as our [`ApprovalState`]; anything else is unknown.
pub fn approval_state(status: Option<&str>) -> ApprovalState {
    match status.map(str::to_ascii_lowercase).as_deref() {
        Some("approved") => ApprovalState::Approved,
        Some("pending") => ApprovalState::Pending,
        Some("restricted") => ApprovalState::Restricted,
        Some("rejected") => ApprovalState::Rejected,
        _ => ApprovalState::Unknown,
    }
}

/// Reads a Canto date: RFC 3339, a calendar date, or Canto's `yyyyMMddHHmmssSSS` (UTC).
fn canto_instant(text: &str, end_of_day: bool) -> Option<chrono::DateTime<chrono::Utc>> {
    parse_instant(text, end_of_day).or_else(|| {
        let digits = text.get(..14)?;
        chrono::NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S")
            .ok()
            .map(|naive| naive.and_utc())
    })
}

impl CantoConnector {
    /// A connector for `config` with `credentials`.
    pub fn new(config: &CantoConfig, credentials: CantoCredentials) -> Result<Self> {
        let secrets = [&credentials.app_id, &credentials.app_secret];
        let oauth = RestClient::new(
            &config.oauth_url,
            config.timeout,
            Box::new(NoToken),
            &secrets,
            message_of,
        )?;
        let client = RestClient::new(
            &config.base_url,
            config.timeout,
            Box::new(ClientCredentials {
                oauth,
                credentials: credentials.clone(),
            }),
            &secrets,
            message_of,
        )?;
        Ok(Self {
            client,
            http: http::build_client()?,
            timeout: config.timeout,
            upload_wait: config.upload_wait,
            upload_poll_interval: config.upload_poll_interval,
            valid_from_field: config.valid_from_field.clone(),
            valid_until_field: config.valid_until_field.clone(),
            actions: action_specs(),
        })
    }

    fn rights(&self, content: &Value) -> RightsWindow {
        let field = |name: &str| content["additional"].get(name).and_then(Value::as_str);
        RightsWindow::new(
            field(&self.valid_from_field).and_then(|v| canto_instant(v, false)),
            field(&self.valid_until_field).and_then(|v| canto_instant(v, true)),
        )
    }

    fn summary(&self, content: &Value) -> Value {
        json!({
            "asset_id": content["id"].clone(),
            "scheme": content["scheme"].clone(),
            "name": content.get("name").cloned().unwrap_or(Value::Null),
            "approval": approval_state(content.get("approvalStatus").and_then(Value::as_str)),
            "rights": self.rights(content),
        })
    }

    async fn content(&self, scheme: &str, asset_id: &str) -> Result<Value> {
        self.client
            .call(&Request::get(format!(
                "/api/v1/{}/{}",
                segment(scheme),
                segment(asset_id)
            )))
            .await
    }
}

/// The OAuth server's client needs no token of its own.
struct NoToken;

#[async_trait]
impl TokenSource for NoToken {
    async fn fetch(&self, _client: &RestClient) -> Result<Secret> {
        Err(Error::permanent(
            "invalid_configuration",
            "the canto OAuth client sends no token",
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    keyword: Option<String>,
    scheme: Option<String>,
    #[serde(default = "yes")]
    approved_only: bool,
    start: Option<u32>,
    limit: Option<u32>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetArgs {
    scheme: String,
    asset_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMetadataArgs {
    scheme: String,
    asset_id: String,
    fields: Map<String, Value>,
    #[serde(default = "yes")]
    custom: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionCommentArgs {
    scheme: String,
    asset_id: String,
    version_id: String,
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateVersionArgs {
    scheme: String,
    asset_id: String,
    file_name: String,
    content_base64: Option<String>,
    source_url: Option<String>,
    comment: Option<String>,
}

/// Where the file of a new version comes from.
enum FileSource {
    Inline(Vec<u8>),
    Url(reqwest::Url),
}

impl CreateVersionArgs {
    /// Checks the arguments the schema cannot: exactly one file source, valid base64 or an
    /// http(s) URL, a file within [`MAX_FILE_BYTES`].
    fn file_source(&self) -> Result<FileSource> {
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
    fn describe(&self) -> String {
        format!(
            "upload {:?} (new version of {}/{})",
            self.file_name, self.scheme, self.asset_id
        )
    }
}

/// Prefixes an error's message, keeping its class, code and retry hint.
fn prefixed(error: Error, prefix: &str) -> Error {
    match error {
        Error::Retryable {
            code,
            message,
            retry_after,
        } => Error::Retryable {
            code,
            message: format!("{prefix}: {message}"),
            retry_after,
        },
        Error::Permanent { code, message } => Error::Permanent {
            code,
            message: format!("{prefix}: {message}"),
        },
    }
}

/// The text of the first `<tag>…</tag>` in `xml`, unescaped.
fn xml_element(xml: &str, tag: &str) -> Option<String> {
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
fn s3_message(body: &str) -> Option<String> {
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
fn upload_form(
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
fn upload_status<'a>(answer: &'a Value, args: &CreateVersionArgs) -> Option<&'a str> {
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
fn current_version(content: &Value) -> Result<(&Value, usize)> {
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
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

impl CantoConnector {
    /// Fetches `url` without credentials, within [`MAX_FILE_BYTES`].
    async fn fetch_source(&self, url: reqwest::Url) -> Result<Vec<u8>> {
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
    async fn post_to_s3(
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
    async fn wait_for_processing(&self, args: &CreateVersionArgs) -> Result<()> {
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

    async fn create_version(&self, args: CreateVersionArgs, key: &str) -> Result<Value> {
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

#[async_trait]
impl Connector for CantoConnector {
    fn name(&self) -> &str {
        NAME
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Value> {
        let action_key = invocation.action_key();
        let key = action_key.as_str();
        let arguments = &invocation.arguments;
        match invocation.action.as_str() {
            "search_assets" => {
                let args: SearchArgs = parse_arguments(NAME, "search_assets", arguments)?;
                let path = match &args.scheme {
                    Some(scheme) => format!("/api/v1/{}", segment(scheme)),
                    None => "/api/v1/search".to_owned(),
                };
                let answer = self
                    .client
                    .call(
                        &Request::get(path)
                            .query_opt("keyword", args.keyword)
                            .query_opt("approval", args.approved_only.then_some("approved"))
                            .query("start", args.start.unwrap_or(0))
                            .query("limit", args.limit.unwrap_or(100)),
                    )
                    .await?;
                let assets: Vec<Value> = answer["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|content| self.summary(content))
                    .filter(|summary| !args.approved_only || summary["approval"] == "approved")
                    .collect();
                Ok(json!({
                    "assets": assets,
                    "found": answer.get("found").cloned().unwrap_or(json!(0)),
                    "start": args.start.unwrap_or(0),
                }))
            }
            "get_asset" => {
                let args: AssetArgs = parse_arguments(NAME, "get_asset", arguments)?;
                let content = self.content(&args.scheme, &args.asset_id).await?;
                let mut asset = self.summary(&content);
                let mut metadata = Map::new();
                for part in ["default", "additional"] {
                    if let Some(fields) = content[part].as_object() {
                        for (name, value) in fields {
                            metadata.insert(name.clone(), value.clone());
                        }
                    }
                }
                asset["metadata"] = Value::Object(metadata);
                asset["tags"] = content.get("tag").cloned().unwrap_or_else(|| json!([]));
                asset["versions"] = content
                    .get("versionHistory")
                    .cloned()
                    .unwrap_or_else(|| json!([]));
                asset["approval_status"] = content
                    .get("approvalStatus")
                    .cloned()
                    .unwrap_or(Value::Null);
                Ok(asset)
            }
            "get_download_link" => {
                let args: AssetArgs = parse_arguments(NAME, "get_download_link", arguments)?;
                let content = self.content(&args.scheme, &args.asset_id).await?;
                let absolute = |url: &str| {
                    if url.starts_with('/') {
                        self.client.url(url)
                    } else {
                        url.to_owned()
                    }
                };
                let url = required(&content, "/url/download", "canto content")?
                    .as_str()
                    .map(absolute)
                    .ok_or_else(|| {
                        Error::permanent(
                            "invalid_response",
                            "canto content: url.download is not a string",
                        )
                    })?;
                let direct = content["url"]["directUrlOriginal"].as_str().map(absolute);
                Ok(json!({
                    "asset_id": args.asset_id, "scheme": args.scheme, "url": url, "requires_auth": true,
                    "direct_url": direct,
                    "file_name": content.get("name").cloned().unwrap_or(Value::Null),
                }))
            }
            "update_metadata" => {
                let args: UpdateMetadataArgs = parse_arguments(NAME, "update_metadata", arguments)?;
                if args.fields.is_empty() {
                    return Err(Error::invalid_arguments(
                        "canto.update_metadata: fields must name at least one field",
                    ));
                }
                let mut updated = Vec::new();
                let properties: Vec<Value> = args
                    .fields
                    .into_iter()
                    .map(|(field, value)| {
                        updated.push(field.clone());
                        json!({"propertyId": field, "propertyValue": value, "action": "", "customField": args.custom})
                    })
                    .collect();
                let answer = self
                    .client
                    .call(
                        &Request::new(Method::PUT, "/api/v1/batch/edit")
                            .json(json!({"contents": [{"id": args.asset_id, "scheme": args.scheme}], "properties": properties}))
                            .idempotent(IDEMPOTENCY_HEADER, key)
                            .text_ok(),
                    )
                    .await?;
                if answer != "success" {
                    return Err(Error::permanent(
                        "invalid_response",
                        format!("canto batch edit answered {answer} instead of success"),
                    ));
                }
                Ok(json!({"asset_id": args.asset_id, "scheme": args.scheme, "updated": updated}))
            }
            "comment_version" => {
                let args: VersionCommentArgs = parse_arguments(NAME, "comment_version", arguments)?;
                self.client
                    .call(
                        &Request::new(Method::POST, "/api/v1/version/comment")
                            .json(json!({"scheme": args.scheme, "id": args.asset_id,
                                         "versionId": args.version_id, "comment": args.comment}))
                            .idempotent(IDEMPOTENCY_HEADER, key)
                            .text_ok(),
                    )
                    .await?;
                Ok(
                    json!({"asset_id": args.asset_id, "scheme": args.scheme, "version_id": args.version_id}),
                )
            }
            "create_version" => {
                let args: CreateVersionArgs = parse_arguments(NAME, "create_version", arguments)?;
                self.create_version(args, key).await
            }
            other => Err(Error::permanent(
                "unknown_action",
                format!("canto has no action {other:?}"),
            )),
        }
    }
}

fn action_specs() -> Vec<ActionSpec> {
    let nullable = json!({"type": ["string", "null"]});
    let scheme = json!({"type": "string", "enum": SCHEMES});
    let id = json!({"type": "string", "minLength": 1});
    let non_empty = json!({"type": "string", "minLength": 1});
    let summary_properties = json!({
        "asset_id": string(), "scheme": string(), "name": nullable.clone(),
        "approval": ApprovalState::schema(), "rights": RightsWindow::schema()
    });
    let summary = object(
        &["asset_id", "scheme", "approval", "rights"],
        summary_properties.clone(),
    );
    let mut asset_properties = summary_properties;
    asset_properties["metadata"] = json!({"type": "object"});
    asset_properties["tags"] = array_of(json!({}));
    asset_properties["versions"] = array_of(json!({"type": "object"}));
    asset_properties["approval_status"] = nullable.clone();
    vec![
        action(
            "search_assets",
            "Search content by keyword (one scheme or all); by default only approved content.",
            object(
                &[],
                json!({"keyword": string(), "scheme": scheme.clone(), "approved_only": {"type": "boolean"},
                "start": {"type": "integer", "minimum": 0}, "limit": {"type": "integer", "minimum": 1, "maximum": 1000}}),
            ),
            object(
                &["assets", "found", "start"],
                json!({"assets": array_of(summary), "found": {"type": "integer"}, "start": {"type": "integer"}}),
            ),
        ),
        action(
            "get_asset",
            "Read content with its metadata, tags, version history, approval state and rights window.",
            object(
                &["scheme", "asset_id"],
                json!({"scheme": scheme.clone(), "asset_id": id.clone()}),
            ),
            object(
                &[
                    "asset_id", "scheme", "approval", "rights", "metadata", "versions",
                ],
                asset_properties,
            ),
        ),
        action(
            "get_download_link",
            "Get the download URL of the original (needs the connector's Bearer token) and the public direct URL when there is one.",
            object(
                &["scheme", "asset_id"],
                json!({"scheme": scheme.clone(), "asset_id": id.clone()}),
            ),
            object(
                &["asset_id", "scheme", "url", "requires_auth"],
                json!({"asset_id": string(), "scheme": string(), "url": string(), "requires_auth": {"type": "boolean"},
                "direct_url": nullable.clone(), "file_name": nullable}),
            ),
        ),
        action(
            "update_metadata",
            "Replace metadata fields (custom fields by default) of one content item.",
            object(
                &["scheme", "asset_id", "fields"],
                json!({"scheme": scheme.clone(), "asset_id": id.clone(),
                "fields": {"type": "object", "minProperties": 1, "additionalProperties": {"type": ["string", "number", "boolean"]}},
                "custom": {"type": "boolean"}}),
            ),
            object(
                &["asset_id", "scheme", "updated"],
                json!({"asset_id": string(), "scheme": string(), "updated": array_of(string())}),
            ),
        ),
        action(
            "comment_version",
            "Leave a comment on a version, for the content team.",
            object(
                &["scheme", "asset_id", "version_id", "comment"],
                json!({"scheme": scheme.clone(), "asset_id": id.clone(), "version_id": string(), "comment": non_empty.clone()}),
            ),
            object(
                &["asset_id", "scheme", "version_id"],
                json!({"asset_id": string(), "scheme": string(), "version_id": string()}),
            ),
        ),
        action(
            "create_version",
            "Upload a file as a new version of content (Canto's S3 upload), wait until Canto has processed it, \
             and optionally comment on the new version for the content team. The file is content_base64 or \
             fetched from source_url (no credentials sent), at most 64 MiB.",
            create_version_arguments(scheme, id, non_empty),
            object(
                &["asset_id", "scheme", "version_id", "file_name", "versions"],
                json!({"asset_id": string(), "scheme": string(), "version_id": string(), "file_name": string(),
                "versions": {"type": "integer", "minimum": 1}, "created": {}, "comment": nullable}),
            ),
        ),
    ]
}

/// `create_version`'s arguments: closed, with exactly one of `content_base64` and
/// `source_url`.
fn create_version_arguments(scheme: Value, id: Value, non_empty: Value) -> Value {
    let mut arguments = object(
        &["scheme", "asset_id", "file_name"],
        json!({"scheme": scheme, "asset_id": id, "file_name": non_empty.clone(),
        "content_base64": non_empty.clone(), "source_url": {"type": "string", "minLength": 1, "format": "uri"},
        "comment": non_empty}),
    );
    arguments["oneOf"] = json!([{"required": ["content_base64"]}, {"required": ["source_url"]}]);
    arguments
}

#[cfg(test)]
mod tests {
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
        let ftp =
            json!({"url": "ftp://s3.example.com/b", "key": "k", "Policy": "p", "Signature": "s"});
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
}
