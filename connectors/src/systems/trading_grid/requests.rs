//! Partner requests and group membership on the hub \[D\]: `get_request`,
//! `list_requests`, `answer_request`, `close_request` (a request is the typed object of
//! [`request_output`]), and `create_group`, `add_group_members`, `remove_group_members`
//! (segmented libraries: a post to a group reaches its members).

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{NAME, TradingGridConnector};
use crate::connector::Result;
use crate::rest::{Request, parse_arguments, required, segment};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestArgs {
    request_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerArgs {
    request_id: String,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseArgs {
    request_id: String,
    resolution: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGroupArgs {
    community_id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersArgs {
    group_id: String,
    company_ids: Vec<String>,
}

fn text_or_null(value: &Value) -> Value {
    if value.is_string() {
        value.clone()
    } else {
        Value::Null
    }
}

/// A request as the actions output it (and as the request events carry it):
/// `{request_id, type, partner_company_id, login_id, asset, market, language, description,
/// status, answers, resolution, created_at, updated_at}`.
pub(super) fn request_output(request: &Value) -> Result<Value> {
    let asset = match &request["asset"] {
        asset @ Value::Object(_) => {
            json!({"system": asset["system"], "asset_id": asset["asset_id"]})
        }
        _ => Value::Null,
    };
    let answers: Vec<Value> = request["answers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|answer| json!({"answer_id": answer["answer_id"], "message": answer["message"],
                             "author_company_id": answer["author_company_id"], "created_at": answer["created_at"]}))
        .collect();
    Ok(json!({
        "request_id": required(request, "/request_id", "trading grid request")?, "type": request["type"],
        "partner_company_id": request["partner_company_id"], "login_id": request["login_id"],
        "asset": asset, "market": text_or_null(&request["market"]), "language": text_or_null(&request["language"]),
        "description": request["description"], "status": request["status"], "answers": answers,
        "resolution": text_or_null(&request["resolution"]),
        "created_at": request["created_at"], "updated_at": request["updated_at"],
    }))
}

fn group_output(group: &Value) -> Result<Value> {
    Ok(
        json!({"group_id": required(group, "/group_id", "trading grid group")?, "community_id": group["community_id"],
              "name": group["name"], "member_company_ids": group["member_company_ids"].as_array().cloned().unwrap_or_default()}),
    )
}

impl TradingGridConnector {
    /// `trading_grid.get_request`.
    pub(super) async fn get_request(&self, arguments: &Value) -> Result<Value> {
        let args: RequestArgs = parse_arguments(NAME, "get_request", arguments)?;
        let request = self
            .client
            .call(&Request::get(format!(
                "/hub/v1/requests/{}",
                segment(&args.request_id)
            )))
            .await?;
        request_output(&request)
    }

    /// `trading_grid.list_requests`.
    pub(super) async fn list_requests(&self, arguments: &Value) -> Result<Value> {
        let args: ListArgs = parse_arguments(NAME, "list_requests", arguments)?;
        let answer = self
            .client
            .call(
                &Request::get("/hub/v1/requests")
                    .query_opt("status", args.status)
                    .query_opt("type", args.kind),
            )
            .await?;
        let requests = answer["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(request_output)
            .collect::<Result<Vec<Value>>>()?;
        Ok(json!({"requests": requests}))
    }

    async fn post_request_change(
        &self,
        request_id: &str,
        what: &str,
        body: Value,
        key: &str,
    ) -> Result<Value> {
        let path = format!("/hub/v1/requests/{}/{what}", segment(request_id));
        let request = self
            .client
            .call_idempotent(Method::POST, path, body, key)
            .await?;
        request_output(&request)
    }

    /// `trading_grid.answer_request`.
    pub(super) async fn answer_request(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: AnswerArgs = parse_arguments(NAME, "answer_request", arguments)?;
        self.post_request_change(
            &args.request_id,
            "answers",
            json!({"message": args.message}),
            key,
        )
        .await
    }

    /// `trading_grid.close_request`.
    pub(super) async fn close_request(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: CloseArgs = parse_arguments(NAME, "close_request", arguments)?;
        self.post_request_change(
            &args.request_id,
            "closure",
            json!({"resolution": args.resolution}),
            key,
        )
        .await
    }

    /// `trading_grid.create_group`.
    pub(super) async fn create_group(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: CreateGroupArgs = parse_arguments(NAME, "create_group", arguments)?;
        let path = format!("/hub/v1/communities/{}/groups", segment(&args.community_id));
        let group = self
            .client
            .call_idempotent(Method::POST, path, json!({"name": args.name}), key)
            .await?;
        group_output(&group)
    }

    /// `trading_grid.add_group_members` (`add`) and `trading_grid.remove_group_members`.
    pub(super) async fn change_group_members(
        &self,
        arguments: &Value,
        key: &str,
        add: bool,
    ) -> Result<Value> {
        let action = if add {
            "add_group_members"
        } else {
            "remove_group_members"
        };
        let args: MembersArgs = parse_arguments(NAME, action, arguments)?;
        let suffix = if add { "" } else { "/removal" };
        let path = format!("/hub/v1/groups/{}/members{suffix}", segment(&args.group_id));
        let group = self
            .client
            .call_idempotent(
                Method::POST,
                path,
                json!({"company_ids": args.company_ids}),
                key,
            )
            .await?;
        group_output(&group)
    }
}
