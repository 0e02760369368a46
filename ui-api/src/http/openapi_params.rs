//! Schemas of the OpenAPI document that no Rust type of the API has: query parameters
//! where an empty value means "absent" (as HTML forms send them), and bodies that take
//! any JSON. They exist for the document only (schemathesis checks the API against it).

use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// The `status` filter of `GET /instances`: an instance status, or empty for any.
pub struct StatusFilter;

impl PartialSchema for StatusFilter {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([
                "",
                "running",
                "waiting",
                "completed",
                "failed",
                "cancelled",
            ]))
            .into()
    }
}

impl ToSchema for StatusFilter {}

/// The `view` of `GET /instances`: `full` (the default, with steps) or `summary`.
pub struct ListView;

impl PartialSchema for ListView {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["", "full", "summary"]))
            .into()
    }
}

impl ToSchema for ListView {}

/// An RFC 3339 instant, or empty for none.
pub struct InstantFilter;

impl PartialSchema for InstantFilter {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([""])),
            )
            .into()
    }
}

impl ToSchema for InstantFilter {}

/// Any JSON value.
pub struct AnyJson;

impl PartialSchema for AnyJson {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .into()
    }
}

/// The `Idempotency-Key` header: 1 to 255 printable ASCII characters (HTTP trims a
/// header value's outer spaces, so it starts and ends with a visible one).
pub struct IdempotencyKey;

impl PartialSchema for IdempotencyKey {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(255))
            .pattern(Some("^[!-~]([ -~]*[!-~])?$"))
            .into()
    }
}

impl ToSchema for IdempotencyKey {}

impl ToSchema for AnyJson {}

/// The response of `GET /instances/{id}/replay`: the replayed state, or with
/// `diff=true` what each event changed.
pub struct ReplayOrDiff;

impl PartialSchema for ReplayOrDiff {
    fn schema() -> RefOr<Schema> {
        let diff = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "With `diff=true`: what each event changed, in seq order",
            ))
            .property(
                "instance_id",
                ObjectBuilder::new().schema_type(Type::String),
            )
            .property(
                "events",
                ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Object)),
            )
            .required("instance_id")
            .required("events");
        OneOfBuilder::new()
            .item(Ref::from_schema_name("Replay"))
            .item(diff)
            .into()
    }
}

impl ToSchema for ReplayOrDiff {}

/// Body of `POST /approvals/{id}/decision`: approve or reject (with the form's `data`),
/// or delegate `to` another user.
pub struct DecisionRequest;

impl PartialSchema for DecisionRequest {
    fn schema() -> RefOr<Schema> {
        let text_or_null =
            || ObjectBuilder::new().schema_type(SchemaType::Array(vec![Type::String, Type::Null]));
        let closed = || Some(AdditionalProperties::FreeForm(false));
        let decide = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "decision",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["approve", "reject"])),
            )
            .property("comment", text_or_null())
            .property(
                "data",
                ObjectBuilder::new()
                    .description(Some("Form data, checked against the approval's `form`")),
            )
            .property("to", ObjectBuilder::new().schema_type(Type::Null))
            .required("decision")
            .additional_properties(closed());
        let delegate = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "decision",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["delegate"])),
            )
            .property(
                "to",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"\S"))
                    .description(Some("The user to hand the decision to")),
            )
            .property("comment", text_or_null())
            .property("data", ObjectBuilder::new())
            .required("decision")
            .required("to")
            .additional_properties(closed());
        OneOfBuilder::new().item(decide).item(delegate).into()
    }
}

impl ToSchema for DecisionRequest {}

/// The `status` filter of `GET /approvals`: empty means `pending`.
pub struct ApprovalStatusFilter;

impl PartialSchema for ApprovalStatusFilter {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([
                "",
                "pending",
                "approved",
                "rejected",
                "failed",
                "cancelled",
                "all",
            ]))
            .into()
    }
}

impl ToSchema for ApprovalStatusFilter {}

/// The `cursor` of `GET /definitions/{id}/versions`: the last version of the previous page.
pub struct VersionCursor;

impl PartialSchema for VersionCursor {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]{0,9}$"))
            .into()
    }
}

impl ToSchema for VersionCursor {}

/// A typed query value, or empty for "absent" (as HTML forms send it).
fn or_empty(typed: ObjectBuilder) -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(typed)
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([""])),
        )
        .into()
}

/// The `limit` of a list: 1 to 500, or empty for the default (50).
pub struct PageSize;

impl PartialSchema for PageSize {
    fn schema() -> RefOr<Schema> {
        or_empty(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(500)),
        )
    }
}

impl ToSchema for PageSize {}

/// A seq (`at` of a replay), or empty for the last.
pub struct SeqFilter;

impl PartialSchema for SeqFilter {
    fn schema() -> RefOr<Schema> {
        or_empty(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
    }
}

impl ToSchema for SeqFilter {}

/// `true` or `false`, or empty for `false`.
pub struct FlagFilter;

impl PartialSchema for FlagFilter {
    fn schema() -> RefOr<Schema> {
        or_empty(ObjectBuilder::new().schema_type(Type::Boolean))
    }
}

impl ToSchema for FlagFilter {}

/// A token's `expires_in`: whole seconds (at least 1) or a duration text such as `"30d"`;
/// absent or `null` for the server's default lifetime.
pub fn lifetime() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

/// The delivery statuses a ledger list accepts, as the `status` filter of `GET /ledger`
/// spells them.
const DELIVERY_STATUSES: &str = "delivered|downloaded|acknowledged|failed|superseded|withdrawn";

/// The `status` filter of `GET /ledger`: delivery statuses, comma-separated, or empty for
/// any.
pub struct DeliveryStatusFilter;

impl PartialSchema for DeliveryStatusFilter {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!(
                "^$|^({DELIVERY_STATUSES})(,({DELIVERY_STATUSES}))*$"
            )))
            .into()
    }
}

impl ToSchema for DeliveryStatusFilter {}

/// The `cursor` of `GET /ledger`: the `next_cursor` of the previous page,
/// `<delivered_at µs>/<delivery id>`, or empty for the first page.
pub struct LedgerCursor;

impl PartialSchema for LedgerCursor {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^$|^-?[0-9]{1,18}/.*$"))
            .into()
    }
}

impl ToSchema for LedgerCursor {}
