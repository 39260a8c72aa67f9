//! The deployment files (`Dockerfile`, `docker-compose.yml`, `deploy/k8s/`) cannot
//! run here; these tests hold them to the binaries: every environment variable they
//! set is one the binary it configures accepts, ports agree, probes hit the health
//! routes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use serde::Deserialize;
use serde_norway::Value;

/// The variables a binary reads: every `env` of its command line (subcommands
/// included), and the librdkafka pass-through prefixes.
struct Accepted(BTreeSet<String>);

impl Accepted {
    fn of(command: clap::Command) -> Self {
        fn collect(command: &clap::Command, names: &mut BTreeSet<String>) {
            for argument in command.get_arguments() {
                if let Some(env) = argument.get_env() {
                    names.insert(env.to_string_lossy().into_owned());
                }
            }
            for sub in command.get_subcommands() {
                collect(sub, names);
            }
        }
        let mut names = BTreeSet::new();
        collect(&command, &mut names);
        Self(names)
    }

    fn accepts(&self, variable: &str) -> bool {
        self.0.contains(variable)
            || ["KAFKA_PRODUCER_", "KAFKA_CONSUMER_"]
                .iter()
                .any(|p| variable.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
    }
}

/// What each binary accepts, by binary name.
fn binaries() -> BTreeMap<&'static str, Accepted> {
    BTreeMap::from([
        ("oms", Accepted::of(command_api::Cli::command())),
        ("inventory", Accepted::of(inventory_saga::Cli::command())),
    ])
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repository().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The keys of a YAML mapping, or of a list of `KEY=value` strings (compose's two forms).
fn variables(environment: &Value) -> Vec<String> {
    match environment {
        Value::Mapping(map) => map.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect(),
        Value::Sequence(items) => {
            items.iter().filter_map(|i| i.as_str()).map(|i| i.split('=').next().unwrap_or(i).to_owned()).collect()
        }
        _ => Vec::new(),
    }
}

/// The binary a container runs: the first word of its command or arguments.
fn binary_of(container: &Value, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|key| {
            container.get(*key).and_then(|c| c.as_sequence()).and_then(|c| c.first()).and_then(|b| b.as_str())
        })
        .unwrap_or_else(|| panic!("a container of ours names its binary in {keys:?}: {container:?}"))
        .to_owned()
}

#[test]
fn the_accepted_set_is_read_from_the_command_lines() {
    let binaries = binaries();
    for (binary, port) in [("oms", "OMS_PORT"), ("inventory", "INVENTORY_PORT")] {
        let accepted = &binaries[binary];
        for variable in [
            port,
            "DATABASE_URL",
            "KAFKA_BROKERS",
            "LOG_FORMAT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "KAFKA_PRODUCER_LINGER_MS",
        ] {
            assert!(accepted.accepts(variable), "{binary} accepts {variable}");
        }
        for variable in ["RUST_LOG", "KAFKA_PRODUCER_", "PORT", "DATABASE_PASSWORD"] {
            assert!(!accepted.accepts(variable), "{binary} does not read {variable}");
        }
    }
    assert!(!binaries["oms"].accepts("INVENTORY_PORT"), "each binary has its own port variable");
}

#[test]
fn docker_compose_sets_only_variables_the_services_accept_and_serves_on_8080() {
    let binaries = binaries();
    let compose: Value = serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    let services = compose["services"].as_mapping().expect("services");
    let mut ours = BTreeMap::new();
    for (name, service) in services {
        let name = name.as_str().expect("service name");
        let uses_our_image =
            service.get("image").and_then(Value::as_str).is_some_and(|i| i.starts_with("order-processing"));
        if !uses_our_image && service.get("build").is_none() {
            continue;
        }
        let binary = binary_of(service, &["command", "entrypoint"]);
        let accepted = binaries
            .get(binary.as_str())
            .unwrap_or_else(|| panic!("service {name} runs {binary}, not one of our binaries"));
        for variable in variables(&service["environment"]) {
            assert!(
                accepted.accepts(&variable),
                "compose service {name} sets {variable}, which {binary} does not read"
            );
        }
        ours.insert(binary, service.clone());
    }
    assert_eq!(ours.keys().map(String::as_str).collect::<Vec<_>>(), ["inventory", "oms"], "both services are composed");
    let published = |binary: &str| -> Vec<String> {
        ours[binary]["ports"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(published("oms"), ["8080:8080"], "the OMS on 8080, as the specification promises");
    assert_eq!(published("inventory"), ["8081:8081"]);
    let kafka = &services.get("kafka").expect("a kafka service")["environment"];
    assert_eq!(kafka["KAFKA_PROCESS_ROLES"].as_str(), Some("broker,controller"), "Kafka in KRaft mode");
    assert!(services.get("kafka").and_then(|k| k["image"].as_str()).is_some_and(|i| i.starts_with("apache/kafka:")));
}

#[derive(Debug, Deserialize)]
struct Manifest {
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    data: BTreeMap<String, Value>,
    #[serde(default, rename = "stringData")]
    string_data: BTreeMap<String, Value>,
    #[serde(default)]
    spec: Value,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
}

fn manifests() -> Vec<Manifest> {
    let directory = repository().join("deploy/k8s");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&directory).expect("deploy/k8s").map(|e| e.expect("entry").path()).collect();
    files.sort();
    let mut manifests = Vec::new();
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
        let text = std::fs::read_to_string(file).expect("manifest");
        for document in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if value.get("apiVersion").and_then(Value::as_str).is_some_and(|v| v.starts_with("kustomize.config.k8s.io"))
            {
                continue;
            }
            manifests.push(serde_norway::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", file.display())));
        }
    }
    manifests
}

#[test]
fn kubernetes_deployments_set_only_accepted_variables_and_probe_the_health_routes() {
    let binaries = binaries();
    let manifests = manifests();
    let keys = |kind: &str| -> BTreeMap<String, Vec<String>> {
        manifests
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| (m.metadata.name.clone(), m.data.keys().chain(m.string_data.keys()).cloned().collect()))
            .collect()
    };
    let (config_maps, secrets) = (keys("ConfigMap"), keys("Secret"));
    let secret_keys: Vec<&String> = secrets.values().flatten().collect();
    assert!(
        secret_keys.iter().any(|k| *k == "DATABASE_URL"),
        "the database URL (with its password) comes from a Secret"
    );
    for key in config_maps.values().flatten() {
        assert!(!key.contains("PASSWORD") && key != "DATABASE_URL", "{key} belongs in the Secret");
    }

    let mut deployed = BTreeSet::new();
    for deployment in manifests.iter().filter(|m| m.kind == "Deployment") {
        let name = &deployment.metadata.name;
        let containers = deployment.spec["template"]["spec"]["containers"].as_sequence().expect("containers");
        for container in containers {
            let binary = binary_of(container, &["args", "command"]);
            let accepted = binaries
                .get(binary.as_str())
                .unwrap_or_else(|| panic!("{name} runs {binary}, not one of our binaries"));
            let mut set = Vec::new();
            for variable in container["env"].as_sequence().into_iter().flatten() {
                set.push((
                    variable["name"].as_str().expect("env name").to_owned(),
                    variable["value"].as_str().map(str::to_owned),
                ));
            }
            for source in container["envFrom"].as_sequence().into_iter().flatten() {
                let (from, reference) = match (source.get("configMapRef"), source.get("secretRef")) {
                    (Some(reference), _) => (&config_maps, reference),
                    (_, Some(reference)) => (&secrets, reference),
                    _ => panic!("{name}: unknown envFrom {source:?}"),
                };
                let referenced = reference["name"].as_str().expect("envFrom name");
                let keys = from
                    .get(referenced)
                    .unwrap_or_else(|| panic!("{name} reads {referenced}, which no manifest defines"));
                set.extend(keys.iter().map(|k| (k.clone(), None)));
            }
            for (variable, _) in &set {
                assert!(accepted.accepts(variable), "Deployment {name} sets {variable}, which {binary} does not read");
            }
            let port_variable = if binary == "oms" { "OMS_PORT" } else { "INVENTORY_PORT" };
            let port = set
                .iter()
                .find(|(v, _)| v == port_variable)
                .and_then(|(_, value)| value.clone())
                .unwrap_or_else(|| panic!("{name} sets {port_variable}"));
            let container_port = container["ports"][0]["containerPort"].as_u64().expect("containerPort");
            assert_eq!(port, container_port.to_string(), "{name} listens where the container port says");
            for (probe, path) in [("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")] {
                assert_eq!(container[probe]["httpGet"]["path"].as_str(), Some(path), "{name} {probe}");
            }
            deployed.insert(binary);
        }
        let service = manifests.iter().find(|m| m.kind == "Service" && &m.metadata.name == name);
        assert!(service.is_some(), "Deployment {name} has a Service");
    }
    assert_eq!(deployed.iter().map(String::as_str).collect::<Vec<_>>(), ["inventory", "oms"]);
}

#[test]
fn the_dockerfile_builds_both_binaries_and_sets_only_accepted_variables() {
    let binaries = binaries();
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("cargo chef cook"), "dependencies are cached with cargo-chef");
    assert!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")) >= 3,
        "a multi-stage build"
    );
    for binary in ["oms", "inventory"] {
        assert!(dockerfile.contains(&format!("/app/target/release/{binary}")), "the image holds {binary}");
    }
    for line in dockerfile.lines().filter_map(|l| l.strip_prefix("ENV ")) {
        for assignment in line.split_whitespace() {
            let variable = assignment.split('=').next().unwrap_or(assignment);
            for (binary, accepted) in &binaries {
                assert!(accepted.accepts(variable), "the Dockerfile sets {variable}, which {binary} does not read");
            }
        }
    }
}

/// The metric names `telemetry::names` defines: the string constants of that file.
fn exported_metrics() -> BTreeSet<String> {
    let names = read("telemetry/src/names.rs");
    let mut metrics = BTreeSet::new();
    for line in names.lines().map(str::trim).filter(|l| l.starts_with("pub const ") && l.contains(": &str = \"")) {
        let quoted = line.split('"').nth(1).expect("a string constant");
        metrics.insert(quoted.to_owned());
    }
    metrics
}

#[test]
fn every_alert_rule_parses_and_names_only_metrics_the_services_export() {
    let metrics = exported_metrics();
    assert!(
        metrics.contains("relay_lag_events") && metrics.contains("dead_letters_total"),
        "the names were read: {metrics:?}"
    );
    let rules: Value = serde_norway::from_str(&read("deploy/prometheus/alerts.yml")).expect("alerts.yml is YAML");
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let alert = rule["alert"].as_str().expect("every rule is an alert").to_owned();
            let expression = rule["expr"].as_str().unwrap_or_else(|| panic!("{alert} has an expression"));
            assert!(rule["annotations"]["summary"].as_str().is_some(), "{alert} has a summary");
            // The metric names are the snake_case words followed by `{`, `[`, `)` or
            // a space that are not PromQL's own words.
            let promql = ["max", "sum", "by", "increase", "rate", "job", "instance", "task", "feed", "group", "topic"];
            let words = expression
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.contains('_') && !promql.contains(w));
            let named: Vec<&str> = words.collect();
            assert!(!named.is_empty(), "{alert} names a metric: {expression}");
            for metric in named {
                assert!(metrics.contains(metric), "{alert} uses {metric}, which telemetry::names does not define");
            }
            alerts.insert(alert);
        }
    }
    for expected in [
        "PipelineStalled",
        "RequestsUnavailable",
        "RelayNotPublishing",
        "ConsumerLagHigh",
        "DeadLetters",
        "EventsParkedByRelay",
        "ItemsPendingTooLong",
    ] {
        assert!(alerts.contains(expected), "an alert for {expected}");
    }
}
