//! The [`Registry`]: every configured connector by name, each action's argument validator
//! compiled once, and the single entry point through which the runtime invokes actions.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use gridflow_core::validate::ActionCatalog;
use serde_json::Value;

use crate::connector::{ActionSpec, Connector, Error, EventSpec, Invocation, Result};

/// The connectors known to this process, addressed by `<connector>.<action>` names.
///
/// Build it once at start-up, then share it (`Arc<Registry>`): lookups and invocations take
/// `&self`.
#[derive(Default)]
pub struct Registry {
    connectors: BTreeMap<String, Registered>,
}

struct Registered {
    connector: Arc<dyn Connector>,
    actions: BTreeMap<String, RegisteredAction>,
}

struct RegisteredAction {
    spec: ActionSpec,
    /// The compiled argument schema, or why it does not compile. A schema is the
    /// connector's code, so a broken one is a bug: it is logged at registration and its
    /// action refuses to run rather than run unchecked.
    validator: std::result::Result<jsonschema::Validator, String>,
}

impl Registry {
    /// A registry without any connector.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry holding the built-in [`core`](crate::core) connector.
    pub fn with_builtin() -> Self {
        let mut registry = Self::new();
        registry.register(Arc::new(crate::core::CoreConnector::new()));
        registry
    }

    /// Adds a connector, replacing any connector of the same name, and compiles the
    /// argument schema of each of its actions.
    ///
    /// An action whose schema does not compile is logged as an error and fails every
    /// invocation with a permanent `invalid_schema` error. When two actions share a name,
    /// the later one wins.
    pub fn register(&mut self, connector: Arc<dyn Connector>) {
        let connector_name = connector.name().to_owned();
        if connector_name.contains('.') {
            tracing::error!(
                connector = %connector_name,
                "connector name contains a '.', so none of its actions can be addressed"
            );
        }
        let mut actions = BTreeMap::new();
        for spec in connector.actions() {
            let validator = jsonschema::draft202012::options()
                .build(&spec.arguments)
                .map_err(|error| error.to_string());
            if let Err(error) = &validator {
                tracing::error!(
                    connector = %connector_name,
                    action = %spec.name,
                    %error,
                    "argument schema does not compile; the action will refuse to run"
                );
            }
            actions.insert(
                spec.name.clone(),
                RegisteredAction {
                    spec: spec.clone(),
                    validator,
                },
            );
        }
        if self
            .connectors
            .insert(connector_name.clone(), Registered { connector, actions })
            .is_some()
        {
            tracing::debug!(connector = %connector_name, "connector replaced");
        }
    }

    /// The registered connectors, in name order.
    pub fn connectors(&self) -> impl Iterator<Item = &Arc<dyn Connector>> {
        self.connectors
            .values()
            .map(|registered| &registered.connector)
    }

    /// The events the connector named `source` emits; `None` when no connector of that
    /// name is registered.
    pub fn events(&self, source: &str) -> Option<&[EventSpec]> {
        self.connectors
            .get(source)
            .map(|registered| registered.connector.events())
    }

    /// The change feeds of the registered connectors that have one, in name order.
    pub fn change_feeds(&self) -> Vec<crate::feed::SharedFeed> {
        self.connectors
            .values()
            .filter_map(|registered| registered.connector.clone().change_feed())
            .collect()
    }

    /// The connector and the spec of an action named `<connector>.<action>`.
    pub fn action(&self, full_name: &str) -> Option<(&Arc<dyn Connector>, &ActionSpec)> {
        let (registered, action) = self.lookup(full_name)?;
        Some((&registered.connector, &action.spec))
    }

    fn lookup(&self, full_name: &str) -> Option<(&Registered, &RegisteredAction)> {
        let (connector_name, action_name) = full_name.split_once('.')?;
        let registered = self.connectors.get(connector_name)?;
        let action = registered.actions.get(action_name)?;
        Some((registered, action))
    }

    /// Checks `arguments` against the argument schema of `full_name` without running it.
    ///
    /// Fails permanently with `unknown_action`, `invalid_schema` or `invalid_arguments`;
    /// the last lists every violation with its JSON pointer.
    pub fn validate_arguments(&self, full_name: &str, arguments: &Value) -> Result<()> {
        let (_, action) = self
            .lookup(full_name)
            .ok_or_else(|| unknown_action(full_name))?;
        check_arguments(full_name, action, arguments)
    }

    /// Runs one attempt of the action `<connector>.<action>`.
    ///
    /// The arguments are checked against the action's schema first, and
    /// `invocation.action` is set from `full_name`.
    /// An unknown action fails permanently with `unknown_action`, arguments that violate
    /// the schema with `invalid_arguments` (listing every violation); anything else is the
    /// connector's own outcome.
    #[tracing::instrument(
        name = "connector_invoke",
        skip_all,
        fields(action = %full_name, attempt = invocation.attempt, item = invocation.item)
    )]
    pub async fn invoke(&self, full_name: &str, mut invocation: Invocation) -> Result<Value> {
        let (registered, action) = self
            .lookup(full_name)
            .ok_or_else(|| unknown_action(full_name))?;
        check_arguments(full_name, action, &invocation.arguments)?;
        invocation.action.clone_from(&action.spec.name);
        let outcome = registered.connector.invoke(invocation).await;
        match &outcome {
            Ok(_) => tracing::debug!("action succeeded"),
            Err(error) => tracing::debug!(
                code = error.code(),
                retryable = error.is_retryable(),
                "action failed"
            ),
        }
        outcome
    }
}

fn unknown_action(full_name: &str) -> Error {
    Error::permanent("unknown_action", format!("unknown action \"{full_name}\""))
}

fn check_arguments(full_name: &str, action: &RegisteredAction, arguments: &Value) -> Result<()> {
    let validator = action.validator.as_ref().map_err(|error| {
        Error::permanent(
            "invalid_schema",
            format!("action \"{full_name}\": argument schema does not compile: {error}"),
        )
    })?;
    // Messages are masked: an argument value may be a credential, and a message
    // quoting it would carry it into history.
    let violations: Vec<String> = validator
        .iter_errors(arguments)
        .map(|error| {
            let path = error.instance_path().as_str();
            let path = if path.is_empty() { "/" } else { path };
            format!("{path}: {}", error.masked())
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_arguments(format!(
            "action \"{full_name}\": invalid arguments: {}",
            violations.join("; ")
        )))
    }
}

/// What `gridflow validate` and deployment check a definition's actions against: the
/// argument schema of every registered action, by its full name; and its event names
/// (triggers, waits) against the events of each registered connector.
impl ActionCatalog for Registry {
    fn argument_schema(&self, action: &str) -> Option<&Value> {
        self.action(action).map(|(_, spec)| &spec.arguments)
    }

    fn actions(&self) -> Vec<String> {
        self.connectors
            .iter()
            .flat_map(|(connector_name, registered)| {
                registered
                    .actions
                    .keys()
                    .map(move |action_name| format!("{connector_name}.{action_name}"))
            })
            .collect()
    }

    fn source_events(&self, source: &str) -> Option<Vec<String>> {
        self.events(source)
            .map(|events| events.iter().map(|event| event.name.clone()).collect())
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.connectors.iter().map(|(name, registered)| {
                    (name, registered.actions.keys().collect::<Vec<_>>())
                }),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use gridflow_core::{InstanceId, StepId};
    use serde_json::json;

    use super::*;

    /// A connector whose only action records nothing and returns the action it was given.
    struct Probe {
        actions: Vec<ActionSpec>,
    }

    impl Probe {
        fn new() -> Self {
            Self {
                actions: vec![
                    ActionSpec {
                        name: "whoami".to_owned(),
                        description: "Returns the action name it was invoked with.".to_owned(),
                        arguments: json!({
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["count"],
                            "properties": {"count": {"type": "integer", "minimum": 1}}
                        }),
                        output: json!({"type": "object"}),
                        effects: crate::effects::Effects::default(),
                    },
                    ActionSpec {
                        name: "broken".to_owned(),
                        description: "Has a schema that does not compile.".to_owned(),
                        arguments: json!({"type": "no-such-type"}),
                        output: json!({"type": "object"}),
                        effects: crate::effects::Effects::default(),
                    },
                ],
            }
        }
    }

    #[async_trait]
    impl Connector for Probe {
        fn name(&self) -> &str {
            "probe"
        }

        fn actions(&self) -> &[ActionSpec] {
            &self.actions
        }

        async fn invoke(&self, invocation: Invocation) -> Result<Value> {
            Ok(json!({"action": invocation.action}))
        }
    }

    fn invocation(arguments: Value) -> Invocation {
        Invocation::new(
            "ignored",
            arguments,
            InstanceId::from("i-1"),
            StepId::from("s"),
            None,
            1,
        )
    }

    fn registry() -> Registry {
        let mut registry = Registry::with_builtin();
        registry.register(Arc::new(Probe::new()));
        registry
    }

    #[test]
    fn actions_are_found_by_full_name_only() {
        let registry = registry();
        let (connector, spec) = registry
            .action("probe.whoami")
            .expect("probe.whoami is registered");
        assert_eq!(connector.name(), "probe");
        assert_eq!(spec.name, "whoami");
        assert!(registry.action("core.noop").is_some());
        for missing in ["whoami", "probe.", "probe.nothing", "nothing.whoami", ""] {
            assert!(registry.action(missing).is_none(), "{missing}");
        }
        let names: Vec<&str> = registry
            .connectors()
            .map(|connector| connector.name())
            .collect();
        assert_eq!(names, ["core", "probe"]);
    }

    #[tokio::test]
    async fn invoke_sets_action_from_full_name() {
        let output = registry()
            .invoke("probe.whoami", invocation(json!({"count": 1})))
            .await
            .expect("valid arguments");
        assert_eq!(output, json!({"action": "whoami"}));
    }

    #[tokio::test]
    async fn unknown_action_fails_permanently() {
        let error = registry()
            .invoke("probe.nothing", invocation(json!({})))
            .await
            .expect_err("no such action");
        assert_eq!(error.code(), "unknown_action");
        assert!(!error.is_retryable());
        assert!(error.message().contains("probe.nothing"), "{error}");
    }

    #[tokio::test]
    async fn invalid_arguments_list_every_violation() {
        let error = registry()
            .invoke(
                "probe.whoami",
                invocation(json!({"count": 0, "colour": "s3cr3t-value"})),
            )
            .await
            .expect_err("two violations");
        assert_eq!(error.code(), "invalid_arguments");
        assert!(!error.is_retryable());
        let message = error.message();
        assert!(message.contains("probe.whoami"), "{message}");
        assert!(message.contains("/count"), "{message}");
        assert!(message.contains("colour"), "{message}");
        assert!(!message.contains("s3cr3t-value"), "{message}");
    }

    #[tokio::test]
    async fn action_with_broken_schema_refuses_to_run() {
        let error = registry()
            .invoke("probe.broken", invocation(json!({})))
            .await
            .expect_err("schema does not compile");
        assert_eq!(error.code(), "invalid_schema");
    }

    #[test]
    fn builtin_schemas_all_compile() {
        let registry = Registry::with_builtin();
        let registered = registry.connectors.get("core").expect("core is built in");
        assert!(!registered.actions.is_empty());
        for (name, action) in &registered.actions {
            assert!(
                action.validator.is_ok(),
                "core.{name}: {:?}",
                action.validator.as_ref().err()
            );
            jsonschema::draft202012::options()
                .build(&action.spec.output)
                .unwrap_or_else(|error| panic!("core.{name} output schema: {error}"));
        }
    }

    #[test]
    fn catalog_serves_argument_schemas_by_full_name() {
        let registry = registry();
        let catalog: &dyn ActionCatalog = &registry;
        assert_eq!(
            catalog.argument_schema("probe.whoami"),
            Some(&Probe::new().actions[0].arguments)
        );
        assert_eq!(
            catalog.argument_schema("core.echo"),
            Some(&json!({"type": "object"}))
        );
        assert_eq!(catalog.argument_schema("probe.nothing"), None);
        assert_eq!(catalog.argument_schema("whoami"), None);
        let names = catalog.actions();
        assert!(names.contains(&"core.fail_until".to_owned()), "{names:?}");
        assert!(names.contains(&"probe.whoami".to_owned()), "{names:?}");
        assert!(names.windows(2).all(|pair| pair[0] < pair[1]), "{names:?}");
    }

    #[test]
    fn validate_arguments_checks_without_running() {
        let registry = registry();
        assert!(
            registry
                .validate_arguments("probe.whoami", &json!({"count": 2}))
                .is_ok()
        );
        let error = registry
            .validate_arguments("probe.whoami", &json!({}))
            .expect_err("count is required");
        assert_eq!(error.code(), "invalid_arguments");
    }
}
