//! What the contract tests share: invoking an action as the runtime would, and the fault
//! cases every action is run through.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::Duration;

use gridflow_connectors::simulator::{Fault, FaultRule, RunningSimulator};
use gridflow_connectors::{Connector, Error, Invocation, Registry};
use gridflow_core::{InstanceId, StepId};
use serde_json::Value;

/// An invocation of `action` with `arguments`, as attempt 1 of step `step`.
pub fn invocation(action: &str, arguments: Value, step: &str) -> Invocation {
    Invocation::new(
        action,
        arguments,
        InstanceId::from("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        StepId::from(step),
        None,
        1,
    )
}

/// Invokes `connector.action` through a registry, so the arguments are checked against the
/// action's schema first, as the runtime does.
pub async fn invoke(
    registry: &Registry,
    full_name: &str,
    arguments: Value,
    step: &str,
) -> Result<Value, Error> {
    let (connector, _) = registry
        .action(full_name)
        .unwrap_or_else(|| panic!("{full_name} is registered"));
    let connector = connector.clone();
    registry.validate_arguments(full_name, &arguments)?;
    let action = full_name.split_once('.').unwrap().1;
    connector.invoke(invocation(action, arguments, step)).await
}

/// Asserts the error class and code.
pub fn assert_error(
    result: Result<Value, Error>,
    retryable: bool,
    code: &str,
    context: &str,
) -> Error {
    let error = result.expect_err(context);
    assert_eq!(error.is_retryable(), retryable, "{context}: {error}");
    assert_eq!(error.code(), code, "{context}: {error}");
    error
}

/// One action's contract cases.
pub struct Case {
    /// `connector.action`.
    pub action: &'static str,
    /// Arguments that succeed.
    pub arguments: Value,
    /// Arguments naming an object that does not exist, when the action takes one.
    pub missing: Option<Value>,
}

/// Runs every case through: success, not found, 429 with Retry-After, 500, a dropped
/// connection, a timeout (through `slow`, the same connector with a short timeout) and an
/// expired token that must be refreshed. `secrets` must appear in no output or error.
pub async fn run_contract(
    simulator: &RunningSimulator,
    registry: &Registry,
    slow: &dyn Connector,
    cases: &[Case],
    secrets: &[&str],
) {
    let check_secrets = |text: &str, context: &str| {
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{context}: a credential leaked: {text}"
            );
        }
    };
    // Every action the connector offers goes through the contract, and nothing else.
    let connector_name = cases
        .first()
        .and_then(|case| case.action.split_once('.'))
        .map(|(connector, _)| connector)
        .expect("at least one case");
    let connector = registry
        .connectors()
        .find(|connector| connector.name() == connector_name)
        .expect("the cases' connector is registered");
    let mut offered: Vec<&str> = connector
        .actions()
        .iter()
        .map(|spec| spec.name.as_str())
        .collect();
    let mut covered: Vec<&str> = cases
        .iter()
        .filter_map(|case| case.action.strip_prefix(connector_name)?.strip_prefix('.'))
        .collect();
    offered.sort_unstable();
    covered.sort_unstable();
    covered.dedup();
    assert_eq!(
        covered, offered,
        "the contract covers every action of {connector_name}"
    );
    for case in cases {
        let name = case.action;
        let output = invoke(
            registry,
            name,
            case.arguments.clone(),
            &format!("success-{name}"),
        )
        .await
        .unwrap_or_else(|error| panic!("{name}: {error}"));
        check_secrets(&output.to_string(), name);
        let (connector, spec) = registry.action(name).unwrap();
        let _ = connector;
        let output_schema = jsonschema::draft202012::options()
            .build(&spec.output)
            .unwrap();
        let violations: Vec<String> = output_schema
            .iter_errors(&output)
            .map(|e| e.to_string())
            .collect();
        assert!(
            violations.is_empty(),
            "{name}: output does not fit its schema: {violations:?}\n{output}"
        );

        if let Some(missing) = &case.missing {
            let error = assert_error(
                invoke(registry, name, missing.clone(), &format!("missing-{name}")).await,
                false,
                "not_found",
                name,
            );
            assert!(
                !error.message().is_empty(),
                "{name}: not found carries the system's message"
            );
            check_secrets(error.message(), name);
        }

        simulator.faults().push(FaultRule::any(Fault::RateLimit {
            retry_after_secs: 7,
        }));
        let error = assert_error(
            invoke(
                registry,
                name,
                case.arguments.clone(),
                &format!("limited-{name}"),
            )
            .await,
            true,
            "rate_limited",
            name,
        );
        assert_eq!(
            error.retry_after(),
            Some(Duration::from_secs(7)),
            "{name}: Retry-After is honoured"
        );

        simulator.faults().push(FaultRule::any(Fault::ServerError));
        assert_error(
            invoke(
                registry,
                name,
                case.arguments.clone(),
                &format!("broken-{name}"),
            )
            .await,
            true,
            "server_error",
            name,
        );

        simulator.faults().push(FaultRule::any(Fault::Drop));
        let error = invoke(
            registry,
            name,
            case.arguments.clone(),
            &format!("dropped-{name}"),
        )
        .await
        .expect_err(name);
        assert!(
            error.is_retryable(),
            "{name}: a dropped connection is retryable: {error}"
        );

        // `slow` first gets its token (and replays the first call), so that the delay
        // below hits the action's own request, not the token request.
        let action = name.split_once('.').unwrap().1;
        slow.invoke(invocation(
            action,
            case.arguments.clone(),
            &format!("success-{name}"),
        ))
        .await
        .unwrap_or_else(|error| panic!("{name} through the short-timeout connector: {error}"));
        simulator
            .faults()
            .push(FaultRule::any(Fault::Latency { ms: 30_000 }));
        let result = slow
            .invoke(invocation(
                action,
                case.arguments.clone(),
                &format!("slow-{name}"),
            ))
            .await;
        assert_error(result, true, "timeout", name);
        simulator.faults().clear();

        // The same idempotency key as the first call: a state-changing action is not applied
        // twice, yet its request must still pass authentication.
        let issued = simulator.tokens().issued_count();
        simulator.tokens().expire_all();
        invoke(
            registry,
            name,
            case.arguments.clone(),
            &format!("success-{name}"),
        )
        .await
        .unwrap_or_else(|error| panic!("{name} after the token expired: {error}"));
        assert_eq!(
            simulator.tokens().issued_count(),
            issued + 1,
            "{name}: exactly one new token"
        );
    }
}
