//! Extractors whose rejections are [`ApiError`]s, so that every failure has the same body.
//!
//! [`ApiJson`] wraps axum's [`Json`] parsing but accepts any content type: clients such
//! as `curl -d` send `application/x-www-form-urlencoded` by default, and the body is
//! JSON whatever the header says.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Path, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use gridflow_runtime::Detail;

use crate::http::error::ApiError;

/// A JSON request body. `Option<ApiJson<T>>` accepts an empty body as `None`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> ApiJson<T> {
    fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        match Json::<T>::from_bytes(bytes) {
            Ok(Json(value)) => Ok(Self(value)),
            Err(JsonRejection::JsonDataError(rejection)) => Err(ApiError::invalid(
                "the request body does not have the expected fields",
                vec![Detail {
                    path: String::new(),
                    message: rejection.body_text(),
                }],
            )),
            Err(JsonRejection::JsonSyntaxError(rejection)) => {
                Err(ApiError::bad_request(rejection.body_text()))
            }
            Err(rejection) => Err(ApiError::from_status(
                rejection.status(),
                rejection.body_text(),
            )),
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = RawBody::from_request(request, state).await?;
        Self::parse(&body.0)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let body = RawBody::from_request(request, state).await?;
        if body.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        Self::parse(&body.0).map(Some)
    }
}

/// The raw request body (within axum's default size limit).
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|rejection| ApiError::from_status(rejection.status(), rejection.body_text()))
    }
}

/// Query-string parameters.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Path parameters.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection| ApiError::from_status(rejection.status(), rejection.body_text()))
    }
}
