//! `core.http` in a running engine, on every backend: a `${secrets.NAME}` reference in a
//! step's `with` reaches the server resolved, while the stored history keeps the
//! reference and never the value.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use gridflow_connectors::Registry;
use gridflow_connectors::config::CoreHttpConfig;
use gridflow_connectors::core::CoreConnector;
use gridflow_core::{DefinitionId, InstanceStatus};
use gridflow_runtime::{Engine, EngineOptions, SystemClock};
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_tests::{on_every_database, wait_until};

const SECRET_VALUE: &str = "tok-5ecret-value-91";

/// Answers every request with `{"authorized": true|false}`: whether it carried
/// `Authorization: Bearer <SECRET_VALUE>`. One request per connection.
async fn start_server() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                let expected = format!("authorization: bearer {SECRET_VALUE}").to_ascii_lowercase();
                let body = format!("{{\"authorized\": {}}}", text.contains(&expected));
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(format!("http://{address}"))
}

async fn secret_reference_stays_out_of_history(url: &str) -> anyhow::Result<()> {
    let base = start_server().await?;
    let store = SqlStore::connect(url, SqlOptions::default()).await?;
    let mut registry = Registry::with_builtin();
    let config = CoreHttpConfig {
        allow: vec!["127.0.0.1/32".parse()?],
        ..CoreHttpConfig::default()
    };
    registry.register(Arc::new(CoreConnector::with_secrets(
        &config,
        Arc::new(|name: &str| (name == "PARTNER_TOKEN").then(|| SECRET_VALUE.to_owned())),
    )));
    let engine = Engine::start(
        Arc::new(store),
        Arc::new(registry),
        Arc::new(SystemClock),
        EngineOptions::default(),
    )
    .await?;
    engine
        .deploy(&format!(
            r#"
id: call-partner
steps:
  - id: call
    action: core.http
    with:
      method: GET
      url: "{base}/orders"
      headers: {{Authorization: "Bearer ${{secrets.PARTNER_TOKEN}}"}}
"#
        ))
        .await?;
    let instance = engine
        .start_instance(
            &DefinitionId::from("call-partner"),
            None,
            serde_json::json!({}),
            "ana",
        )
        .await?;
    let view = wait_until(Duration::from_secs(20), "call-partner completes", || {
        let engine = engine.clone();
        let instance = instance.clone();
        async move {
            let view = engine.instance(&instance).await?;
            Ok(matches!(
                view.status,
                InstanceStatus::Completed | InstanceStatus::Failed
            )
            .then_some(view))
        }
    })
    .await?;
    ensure!(view.status == InstanceStatus::Completed, "{view:?}");
    let output = &view.steps.get("call").context("step call")?.output;
    ensure!(
        output
            .as_ref()
            .is_some_and(|output| output["body"]["authorized"] == true),
        "the server got the resolved secret: {output:?}"
    );
    let history = serde_json::to_string(&engine.history(&instance).await?)?;
    ensure!(
        !history.contains(SECRET_VALUE),
        "the secret reached the history: {history}"
    );
    ensure!(
        history.contains("${secrets.PARTNER_TOKEN}"),
        "the recorded arguments keep the reference: {history}"
    );
    Ok(())
}

#[tokio::test]
async fn secret_reference_is_sent_resolved_and_history_keeps_only_the_reference() {
    on_every_database(|url| async move { secret_reference_stays_out_of_history(&url).await })
        .await
        .unwrap();
}
