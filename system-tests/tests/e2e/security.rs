//! Both services against a broker that only speaks TLS (a private crabka-broker of
//! each test's own, see `system_tests::secure_broker`), configured as production
//! configures them (issue 18):
//!
//! - over SASL_SSL (SCRAM-SHA-512) an order flows end to end, and a client without
//!   TLS, or with TLS but no SASL login, gets nothing from that broker;
//! - with a client certificate, where the listener requires one, an order flows; a
//!   service without the certificate is not ready;
//! - a wrong password, a CA that did not sign the broker's certificate and an expired
//!   broker certificate each leave the services running and answering readiness 503
//!   naming the broker, with a `not ready` log line that says why and no secret in the
//!   log; fixing the password or the CA and restarting them, or renewing the broker's
//!   certificate and restarting it, makes them ready again;
//! - where the broker enforces ACLs and each service's principal has only the grants
//!   README lists (no `Create`), missing topics are named, by readiness 503 and once in
//!   the log, until an operator creates them; then the waiting orders resolve, and a
//!   restart finds the topics and is ready without asking to create any;
//! - an operator takes the OMS's leave to write its topic back: orders are still
//!   taken, their events wait in the store and none is parked, readiness says the
//!   pipeline stalls, and once the grant is back every order resolves, no restart.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::PgPool;
use system_tests::processes::{binaries_dir, free_port};
use system_tests::secure_broker::{ADMIN, Acl, Listener, Resource, SecureBroker};
use system_tests::system::schema_pools;
use system_tests::{Api, ProcessOptions, ProcessSystem, Service, ServiceProcess};

use crate::invariants::assert_invariants;

/// How long a service may take to become ready (schema migrated, broker reached).
const READY: Duration = Duration::from_secs(60);
/// How long an order may take to resolve.
const RESOLVE: Duration = Duration::from_secs(30);
/// How long a refused client waits for metadata before the test calls it refused.
const REFUSED: Duration = Duration::from_secs(3);
/// How long a misconfigured service is watched: it must stay up and unready
/// throughout (longer than one readiness answer is reused, 5 s).
const WATCH: Duration = Duration::from_secs(6);
/// How long a misconfigured service may take to log why it is not ready.
const EXPLAINED: Duration = Duration::from_secs(30);

/// A password no broker of these tests knows.
const WRONG_PASSWORD: &str = "wrong-pw-7c1f0e5a";

/// Both services as processes against `broker`, configured by `env`, ready.
async fn system_over(broker: &SecureBroker, env: &[(String, String)]) -> ProcessSystem {
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let options = ProcessOptions { brokers: Some(broker.address.clone()), env: &env, ..ProcessOptions::default() };
    ProcessSystem::start_with(options).await.expect("both services ready over TLS")
}

/// Places one order of 3 of 10 units and checks that it is executed and reserves them.
async fn assert_an_order_is_executed(api: &Api) {
    let started = tokio::time::Instant::now();
    api.add_product("mug", 10, 2).await.expect("adding mug");
    let order = api.place_order("u-1", &[("mug", 3)]).await.expect("placing an order");
    let order = api.resolved_order(order["orderId"].as_str().expect("order id"), RESOLVE).await.expect("resolved");
    eprintln!("an order placed and resolved in {:?}", started.elapsed());
    assert_eq!(order["status"], "EXECUTED", "{order}");
    let mug = api.product("mug").await.expect("mug");
    assert_eq!((mug["available"].as_i64(), mug["reserved"].as_i64()), (Some(7), Some(3)), "{mug}");
}

/// Asks `broker` for metadata as `config` says (in a blocking task); the error when
/// none came within [`REFUSED`].
async fn metadata(config: ClientConfig) -> Result<Vec<String>, String> {
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = config.create().map_err(|e| format!("creating the client: {e}"))?;
        let metadata = client.fetch_metadata(None, REFUSED).map_err(|e| e.to_string())?;
        Ok(metadata.topics().iter().map(|topic| topic.name().to_owned()).collect())
    })
    .await
    .expect("the metadata request completes")
}

/// A client of `broker` without any security setting: plaintext.
fn plaintext_client(broker: &SecureBroker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &broker.address);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_sasl_ssl_an_order_is_executed_and_clients_without_tls_or_login_are_refused() {
    let broker = SecureBroker::start(Listener::SaslSsl).await.expect("a SASL_SSL broker");
    // Asked while the services start: each waits up to REFUSED.
    let plaintext = tokio::spawn(metadata(plaintext_client(&broker)));
    let mut tls_only = plaintext_client(&broker);
    tls_only.set("security.protocol", "ssl").set("ssl.ca.location", broker.tls.ca.display().to_string());
    let tls_only = tokio::spawn(metadata(tls_only));

    let system = system_over(&broker, &broker.service_env()).await;
    assert_an_order_is_executed(&system.api).await;
    assert_invariants(&system).await;
    // The services' topics are on this broker: they did not reach another one.
    let topics = metadata(broker.client_config()).await.expect("a SASL_SSL client as the services gets metadata");
    for topic in [&system.kafka.topics.order_events, &system.kafka.topics.order_outcomes] {
        assert!(topics.contains(topic), "{topic} is on the secure broker: {topics:?}");
    }
    assert_no_secret_logged([&system.oms, &system.inventory], &[&broker.password]);

    let plaintext = plaintext.await.expect("the plaintext client's task");
    assert!(plaintext.is_err(), "a plaintext client got metadata: {plaintext:?}");
    let tls_only = tls_only.await.expect("the TLS-only client's task");
    assert!(tls_only.is_err(), "a TLS client that did not log in got metadata: {tls_only:?}");
    let _ = std::fs::remove_dir_all(&system.log_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_certificate_an_order_is_executed_and_without_one_a_service_is_not_ready() {
    let broker =
        SecureBroker::start(Listener::ClientCertificate).await.expect("a broker requiring client certificates");
    let system = system_over(&broker, &broker.service_env()).await;
    assert_an_order_is_executed(&system.api).await;

    let without: Vec<(String, String)> = broker
        .service_env()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("KAFKA_SSL_KEY_") && name != "KAFKA_SSL_CERTIFICATE_LOCATION")
        .collect();
    let mut pair = Pair::start(&broker, &without).await;
    pair.assert_unready_and_explained(&broker, "certificate required").await;
    assert_no_secret_logged([&system.oms, &system.inventory], &[&broker.tls.client_key_password]);
    let _ = std::fs::remove_dir_all(&system.log_dir);
    let _ = std::fs::remove_dir_all(&pair.log_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_explained_without_a_crash_and_fixing_it_recovers() {
    let broker = SecureBroker::start(Listener::SaslSsl).await.expect("a SASL_SSL broker");
    let wrong = with(broker.service_env(), "KAFKA_SASL_PASSWORD", WRONG_PASSWORD);
    let mut pair = Pair::start(&broker, &wrong).await;
    pair.assert_unready_and_explained(&broker, "SASL authentication").await;
    assert_no_secret_logged([&pair.oms, &pair.inventory], &[WRONG_PASSWORD]);

    pair.restart_with(&broker.service_env()).await;
    pair.wait_ready().await;
    assert_an_order_is_executed(&pair.api).await;
    assert_invariants(&pair.deployment().await).await;
    assert_no_secret_logged([&pair.oms, &pair.inventory], &[WRONG_PASSWORD, &broker.password]);
    let _ = std::fs::remove_dir_all(&pair.log_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_did_not_sign_the_broker_is_explained_and_fixing_it_recovers() {
    let broker = SecureBroker::start(Listener::SaslSsl).await.expect("a SASL_SSL broker");
    // The system's CAs: real ones, none of which signed the development certificate.
    let unknown = with(broker.service_env(), "KAFKA_SSL_CA_LOCATION", "/etc/ssl/certs/ca-certificates.crt");
    let mut pair = Pair::start(&broker, &unknown).await;
    pair.assert_unready_and_explained(&broker, "certificate verify failed").await;
    assert_no_secret_logged([&pair.oms, &pair.inventory], &[&broker.password]);

    pair.restart_with(&broker.service_env()).await;
    pair.wait_ready().await;
    let _ = std::fs::remove_dir_all(&pair.log_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_broker_certificate_is_explained_without_a_crash_and_renewing_it_recovers() {
    let mut broker =
        SecureBroker::start(Listener::ExpiredCertificate).await.expect("a broker with an expired certificate");
    let mut pair = Pair::start(&broker, &broker.service_env()).await;
    // librdkafka reports an expired certificate as one that does not verify (it does
    // not say "expired"): the line names the certificate, not the password.
    pair.assert_unready_and_explained(&broker, "certificate verify failed").await;
    assert_no_secret_logged([&pair.oms, &pair.inventory], &[&broker.password]);

    // The fix is the broker's: the services are left running, and reconnect.
    let renewed = tokio::time::Instant::now();
    broker.replace_certificate().await.expect("the broker restarted with a valid certificate");
    eprintln!("the broker restarted with a valid certificate in {:?}", renewed.elapsed());
    pair.wait_ready().await;
    assert_an_order_is_executed(&pair.api).await;
    assert_no_secret_logged([&pair.oms, &pair.inventory], &[&broker.password]);
    let _ = std::fs::remove_dir_all(&pair.log_dir);
}

/// What the log says, once per task, when topics are missing and the service may not
/// create them (`messaging::topics`).
const NOT_ALLOWED: &str = "not allowed to create them";

/// The grants of README's permissions table for a pair of run `run`, one principal
/// per service (named after it), literally as listed; plus `IdempotentWrite` on the
/// cluster, which crabka 0.3.0 still asks of an idempotent producer, where Kafka 3.0
/// and later accept `Write` on a topic (KIP-679).
fn readme_grants(run: &str) -> Vec<Acl> {
    let topic = |name: &str| Resource::Topic(topic_name(run, name));
    let mut acls = Vec::new();
    for (service, written, read) in [
        (Service::Oms, &["oms.order-events", "inventory.order-outcomes.dlq"][..], "inventory.order-outcomes"),
        (
            Service::Inventory,
            &["inventory.order-outcomes", "inventory.stock-alerts", "oms.order-events.dlq"][..],
            "oms.order-events",
        ),
    ] {
        let user = service.binary_name();
        for name in written {
            acls.extend([Acl::allow(user, "WRITE", topic(name)), Acl::allow(user, "DESCRIBE", topic(name))]);
        }
        acls.extend([Acl::allow(user, "READ", topic(read)), Acl::allow(user, "DESCRIBE", topic(read))]);
        let group = Resource::Group(group_name(run, service));
        acls.extend([Acl::allow(user, "READ", group.clone()), Acl::allow(user, "DESCRIBE", group)]);
        acls.push(Acl::allow(user, "IDEMPOTENT_WRITE", Resource::Cluster));
    }
    acls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_leave_to_create_topics_the_missing_ones_are_named_until_an_operator_creates_them() {
    let broker = SecureBroker::start_with_acls(&["oms", "inventory"]).await.expect("a broker enforcing ACLs");
    let run = new_run();
    let granted = tokio::time::Instant::now();
    let acls = readme_grants(&run);
    broker.grant(&acls).await.expect("granting README's permissions");
    eprintln!("{} ACLs granted in {:?}", acls.len(), granted.elapsed());
    let envs = ["oms", "inventory"].map(|user| broker.service_env_as(user).expect("the service's user"));
    let mut pair = Pair::start_each(&broker, envs.clone(), run.clone()).await;

    // Each task names the topics it needs: the relay those it publishes to, the
    // consumer its topic and that topic's dead-letter topic.
    let t = |name: &str| topic_name(&run, name);
    let missing = [
        (Service::Oms, vec![t("oms.order-events"), t("inventory.order-outcomes"), t("inventory.order-outcomes.dlq")]),
        (
            Service::Inventory,
            vec![
                t("inventory.order-outcomes"),
                t("inventory.stock-alerts"),
                t("oms.order-events"),
                t("oms.order-events.dlq"),
            ],
        ),
    ];
    let http = &pair.api.http;
    tokio::join!(
        assert_waiting_for_topics(&mut pair.oms, http, &missing[0].1),
        assert_waiting_for_topics(&mut pair.inventory, http, &missing[1].1),
    );
    // Orders are taken meanwhile: their events wait in the event stores.
    pair.api.add_product("mug", 10, 2).await.expect("adding mug");
    let order = pair.api.place_order("u-1", &[("mug", 3)]).await.expect("placing an order while topics are missing");
    let order_id = order["orderId"].as_str().expect("order id").to_owned();

    // The operator creates them; the services find them without a restart.
    let created = tokio::time::Instant::now();
    let topics: BTreeSet<String> = missing.iter().flat_map(|(_, topics)| topics.clone()).collect();
    create_topics_as_admin(&broker, &topics).await;
    pair.wait_ready().await;
    eprintln!("both ready {:?} after the topics were created", created.elapsed());
    let order = pair.api.resolved_order(&order_id, RESOLVE).await.expect("the waiting order resolved");
    assert_eq!(order["status"], "EXECUTED", "{order}");
    let mug = pair.api.product("mug").await.expect("mug");
    assert_eq!((mug["available"].as_i64(), mug["reserved"].as_i64()), (Some(7), Some(3)), "{mug}");
    assert_invariants(&pair.deployment().await).await;
    let refusals = [&pair.oms, &pair.inventory].map(|process| log_lines(process, NOT_ALLOWED).len());

    // Started again, they find every topic and go on, without asking to create any.
    pair.restart_each(envs).await;
    pair.wait_ready().await;
    let second = pair.api.place_order("u-2", &[("mug", 2)]).await.expect("placing a second order");
    let second =
        pair.api.resolved_order(second["orderId"].as_str().expect("order id"), RESOLVE).await.expect("resolved");
    assert_eq!(second["status"], "EXECUTED", "{second}");
    for (process, before) in [&pair.oms, &pair.inventory].into_iter().zip(refusals) {
        let after = log_lines(process, NOT_ALLOWED).len();
        assert_eq!(after, before, "{} was refused topics after its restart", process.binary_name());
    }
    assert_no_secret_logged([&pair.oms, &pair.inventory], &[&broker.password]);
    let _ = std::fs::remove_dir_all(&pair.log_dir);
}

/// Every topic of a pair of run `run`, dead-letter topics included.
fn every_topic(run: &str) -> BTreeSet<String> {
    ["oms.order-events", "inventory.order-outcomes", "inventory.stock-alerts"]
        .into_iter()
        .flat_map(|name| [topic_name(run, name), topic_name(run, &format!("{name}.dlq"))])
        .collect()
}

/// A refusal of authority is not a refusal of the message: the relay that may no
/// longer write its topic keeps the events in the store and tries again (nothing
/// parked), readiness says the pipeline stalls once the oldest unpublished event is
/// older than `PIPELINE_STALL_AFTER_MS`, and a new grant lets everything through
/// without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_leave_to_write_stalls_the_relay_without_parking_and_a_new_grant_heals_it() {
    const STALL_AFTER_MS: &str = "5000";
    let broker = SecureBroker::start_with_acls(&["oms", "inventory"]).await.expect("a broker enforcing ACLs");
    let run = new_run();
    broker.grant(&readme_grants(&run)).await.expect("granting README's permissions");
    create_topics_as_admin(&broker, &every_topic(&run)).await;
    let envs = ["oms", "inventory"].map(|user| {
        let mut env = broker.service_env_as(user).expect("the service's user");
        env.push(("PIPELINE_STALL_AFTER_MS".to_owned(), STALL_AFTER_MS.to_owned()));
        env
    });
    let mut pair = Pair::start_each(&broker, envs, run.clone()).await;
    pair.wait_ready().await;
    pair.api.add_product("mug", 10, 2).await.expect("adding mug");
    let first = pair.api.place_order("u-1", &[("mug", 1)]).await.expect("placing an order");
    let first = pair.api.resolved_order(first["orderId"].as_str().expect("id"), RESOLVE).await.expect("resolved");
    assert_eq!(first["status"], "EXECUTED", "{first}");

    let leave_to_write = [Acl::allow("oms", "WRITE", Resource::Topic(topic_name(&run, "oms.order-events")))];
    broker.revoke(&leave_to_write).await.expect("revoking the OMS's leave to write its topic");
    let revoked = tokio::time::Instant::now();
    let waiting = pair.api.place_order("u-2", &[("mug", 2)]).await.expect("an order is still taken");
    let waiting_id = waiting["orderId"].as_str().expect("id").to_owned();
    let http = pair.api.http.clone();
    let stalled = pair
        .oms
        .wait_readiness(&http, READY, "unready naming the pipeline", |status, body| {
            status == 503 && body.contains("pipeline") && body.contains("oldest unpublished event")
        })
        .await
        .expect("the OMS says its pipeline stalls");
    eprintln!(
        "the OMS said its pipeline stalls {stalled:?} after the order ({:?} after the revocation)",
        revoked.elapsed()
    );
    let (oms_schema, _) = schema_pools(&pair.database_url).await.expect("the schemas");
    let order = pair.api.order(&waiting_id).await.expect("the waiting order");
    assert_eq!(order["status"], "PENDING", "nothing reached the saga: {order}");
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&oms_schema)
        .await
        .expect("counting the OMS's dead letters");
    assert_eq!(parked, 0, "an event refused for want of permission is not parked");

    let granted = tokio::time::Instant::now();
    broker.grant(&leave_to_write).await.expect("granting it again");
    let order = pair.api.resolved_order(&waiting_id, RESOLVE).await.expect("the waiting order resolves");
    eprintln!("the waiting order resolved {:?} after the new grant", granted.elapsed());
    assert_eq!(order["status"], "EXECUTED", "{order}");
    pair.wait_ready().await;
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&oms_schema)
        .await
        .expect("counting the OMS's dead letters");
    assert_eq!(parked, 0, "nothing parked after the grant either");
    assert_invariants(&pair.deployment().await).await;
    assert_no_secret_logged([&pair.oms, &pair.inventory], &[&broker.password]);
    let _ = std::fs::remove_dir_all(&pair.log_dir);
}

/// Creates `topics` (3 partitions, as the pair is configured) as the super user.
async fn create_topics_as_admin(broker: &SecureBroker, topics: &BTreeSet<String>) {
    let admin: AdminClient<DefaultClientContext> =
        broker.client_config_as(ADMIN).expect("the admin's configuration").create().expect("an admin client");
    let new: Vec<NewTopic<'_>> = topics.iter().map(|name| NewTopic::new(name, 3, TopicReplication::Fixed(1))).collect();
    let results = admin.create_topics(&new, &AdminOptions::new()).await.expect("CreateTopics answered");
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("the admin could not create {topic}: {code}"));
    }
    tokio::task::spawn_blocking(move || drop(admin)).await.expect("the admin client dropped");
}

/// The lines of `process`'s log that contain `text`.
fn log_lines(process: &ServiceProcess, text: &str) -> Vec<String> {
    let log = std::fs::read_to_string(process.log()).unwrap_or_default();
    log.lines().filter(|line| line.contains(text)).map(str::to_owned).collect()
}

/// Watches `process` for [`WATCH`] at least and until both its readiness and its log
/// name every topic of `missing`: it must keep running; once readiness named them it
/// must answer 503 naming them throughout, the broker up (it answers; the topics are
/// what is missing); and the log must say so once per task, not on every retry.
async fn assert_waiting_for_topics(process: &mut ServiceProcess, http: &reqwest::Client, missing: &[String]) {
    let name = process.binary_name();
    let started = tokio::time::Instant::now();
    let mut named_by_readiness = None;
    loop {
        assert!(process.is_running(), "{name} exited; see {}", process.log().display());
        // Before its first attempt at its topics a service may answer either way.
        if let Ok((status, body)) = process.readiness(http).await {
            let names_all = status == 503 && missing.iter().all(|topic| body.contains(topic.as_str()));
            if names_all {
                // "not ready: pipeline is down (database and broker are up); pipeline: …"
                let down = body.split(" (").next().unwrap_or_default();
                assert!(!down.contains("broker"), "{name}'s readiness blames the broker, which answers: {body}");
                named_by_readiness.get_or_insert(body);
            } else {
                assert!(
                    named_by_readiness.is_none(),
                    "{name}'s readiness stopped naming the missing topics {missing:?}: {status} {body}"
                );
            }
        }
        let lines = log_lines(process, NOT_ALLOWED);
        let logged = missing.iter().all(|topic| lines.iter().any(|line| line.contains(topic.as_str())));
        if let (true, Some(body)) = (logged, &named_by_readiness)
            && started.elapsed() >= WATCH
        {
            assert!(lines.len() <= 2, "{name} said it more than once per task (relay, consumer): {lines:#?}");
            eprintln!("{name} after {:?}: readiness {body}", started.elapsed());
            for line in lines {
                eprintln!("{name}'s log: {line}");
            }
            return;
        }
        assert!(
            started.elapsed() < EXPLAINED,
            "{name} did not name the missing topics {missing:?} within {EXPLAINED:?} (readiness: {named_by_readiness:?}); \
             see {}",
            process.log().display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `env` with `name` set to `value`.
fn with(mut env: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    env.retain(|(key, _)| key != name);
    env.push((name.to_owned(), value.to_owned()));
    env
}

/// Watches `process` for [`WATCH`] at least and until its log explains why it is not
/// ready: it must keep running (no crash loop) and answer readiness 503 naming the
/// broker throughout, and log a `not ready` line naming `broker` and `cause`.
async fn assert_unready_and_explained(
    process: &mut ServiceProcess,
    http: &reqwest::Client,
    broker: &SecureBroker,
    cause: &str,
) {
    let name = process.binary_name();
    let started = tokio::time::Instant::now();
    let explained = loop {
        assert!(process.is_running(), "{name} exited; see {}", process.log().display());
        // Not up yet (binding, migrating) is not an answer.
        if let Ok((status, body)) = process.readiness(http).await {
            assert_eq!(status, 503, "{name} is ready with a broker it cannot use: {body}");
            assert!(body.contains("broker is down"), "{name}'s readiness names the broker: {body}");
        }
        let log = std::fs::read_to_string(process.log()).unwrap_or_default();
        let line = log.lines().find(|line| line.contains("not ready") && line.contains(cause)).map(str::to_owned);
        match line {
            Some(line) if started.elapsed() >= WATCH => break line,
            Some(_) => {}
            None => assert!(
                started.elapsed() < EXPLAINED,
                "{name} did not log `not ready` with {cause:?} within {EXPLAINED:?}; see {}",
                process.log().display()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(explained.contains(&broker.address), "{name}'s line names the broker's address: {explained}");
    eprintln!("{name} after {:?}: {explained}", started.elapsed());
}

/// None of `processes`' logs contains any of `secrets`.
fn assert_no_secret_logged(processes: [&ServiceProcess; 2], secrets: &[&str]) {
    for process in processes {
        let log = std::fs::read_to_string(process.log()).expect("the service's log");
        for secret in secrets {
            assert!(
                !log.contains(secret),
                "{} logged a secret; see {}",
                process.binary_name(),
                process.log().display()
            );
        }
    }
}

/// Both services as processes on a fresh database and topics of their own, started
/// without waiting until they are ready (a misconfigured pair never is), and started
/// again with other settings on the same ports, database and topics.
struct Pair {
    api: Api,
    database_url: String,
    log_dir: std::path::PathBuf,
    oms: ServiceProcess,
    inventory: ServiceProcess,
    /// Each service's arguments and port.
    args: [(Service, Vec<String>, u16); 2],
}

/// A run's name: its topics and consumer groups are its own.
fn new_run() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// The topic a pair of run `run` uses for `name` (`oms.order-events`, say).
fn topic_name(run: &str, name: &str) -> String {
    format!("t{run}.{name}")
}

/// The consumer group of `service` in a pair of run `run`.
fn group_name(run: &str, service: Service) -> String {
    format!("{}-g{run}", service.binary_name())
}

impl Pair {
    async fn start(broker: &SecureBroker, env: &[(String, String)]) -> Self {
        Self::start_each(broker, [env.to_vec(), env.to_vec()], new_run()).await
    }

    /// Like [`Pair::start`], the OMS configured by `envs[0]` and the inventory by
    /// `envs[1]`, on the topics and groups of `run`.
    async fn start_each(broker: &SecureBroker, envs: [Vec<(String, String)>; 2], run: String) -> Self {
        // Built once per test process; not on a runtime thread.
        tokio::task::spawn_blocking(binaries_dir).await.expect("the build's task").expect("the service binaries");
        let database_url = migrations::testing::create_database().await.expect("a test database");
        let log_dir = std::env::temp_dir().join(format!("order-processing-e2e-{run}"));
        std::fs::create_dir_all(&log_dir).expect("the log directory");
        let args = [Service::Oms, Service::Inventory].map(|service| {
            let port = free_port().expect("a free port");
            let args = vec![
                format!("--database-url={database_url}"),
                format!("--kafka-brokers={}", broker.address),
                "--kafka-partitions=3".to_owned(),
                format!("--topic-order-events={}", topic_name(&run, "oms.order-events")),
                format!("--topic-order-outcomes={}", topic_name(&run, "inventory.order-outcomes")),
                format!("--topic-stock-alerts={}", topic_name(&run, "inventory.stock-alerts")),
                "--host=127.0.0.1".to_owned(),
                format!("--port={port}"),
                format!("--consumer-group={}", group_name(&run, service)),
            ];
            (service, args, port)
        });
        let [oms, inventory] = args.clone().map(|(service, args, port)| {
            let log = log_dir.join(format!("{}.log", service.binary_name()));
            let env = envs[usize::from(service == Service::Inventory)].clone();
            let mut process = ServiceProcess::new(service, args, env, port, log).expect("a service process");
            process.start().expect("starting the service");
            process
        });
        eprintln!("service logs in {}", log_dir.display());
        let api = Api::new(oms.base_url.clone(), inventory.base_url.clone());
        Self { api, database_url, log_dir, oms, inventory, args }
    }

    /// [`assert_unready_and_explained`] of both, at the same time.
    async fn assert_unready_and_explained(&mut self, broker: &SecureBroker, cause: &str) {
        let http = &self.api.http;
        tokio::join!(
            assert_unready_and_explained(&mut self.oms, http, broker, cause),
            assert_unready_and_explained(&mut self.inventory, http, broker, cause),
        );
    }

    /// Stops both (SIGTERM: they must exit by themselves, broker or not) and starts
    /// them again with `env`, appending to the same logs.
    async fn restart_with(&mut self, env: &[(String, String)]) {
        self.restart_each([env.to_vec(), env.to_vec()]).await;
    }

    /// Like [`Pair::restart_with`], the OMS with `envs[0]` and the inventory with
    /// `envs[1]`.
    async fn restart_each(&mut self, envs: [Vec<(String, String)>; 2]) {
        let processes = [&mut self.oms, &mut self.inventory].into_iter().zip(self.args.clone()).zip(envs);
        for ((process, (service, args, port)), env) in processes {
            let (status, took) = process.terminate(Duration::from_secs(20)).await.expect("stopping the service");
            eprintln!("{} stopped in {took:?}: {status}", service.binary_name());
            let log = process.log().to_path_buf();
            *process = ServiceProcess::new(service, args, env, port, log).expect("a service process");
            process.start().expect("starting the service again");
        }
    }

    /// Waits until both are ready (again).
    async fn wait_ready(&mut self) {
        let http = &self.api.http;
        let started = tokio::time::Instant::now();
        for process in [&mut self.oms, &mut self.inventory] {
            let name = process.binary_name();
            process.wait_ready(http, READY).await.unwrap_or_else(|error| panic!("{name} ready: {error:#}"));
            eprintln!("{name} ready {:?} after the wait began", started.elapsed());
        }
    }

    /// What the invariant checks need.
    async fn deployment(&self) -> (Api, PgPool, PgPool) {
        let (oms, inventory) = schema_pools(&self.database_url).await.expect("the schemas");
        (self.api.clone(), oms, inventory)
    }
}
