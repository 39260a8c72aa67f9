//! `oms dlq list|show|replay` as a process, on dead letters parked directly with SQL
//! (what the consumers and the relay park), re-driven to the shared broker on topics
//! of the test's own, and read back with a plain Kafka consumer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};
use crate::operations::{oms, stdout};
use crate::topics::{Received, broker, read_topic};

/// A topic name no other test uses.
fn unique(name: &str) -> String {
    format!("dlq-test-{}-{name}", Uuid::new_v4().simple())
}

/// A dead letter as a consumer or the relay parks it.
struct Parked<'a> {
    source: &'a str,
    origin: String,
    topic: &'a str,
    reason: &'a str,
    event_id: Option<Uuid>,
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    headers: Value,
}

impl<'a> Parked<'a> {
    fn consumer(
        topic: &'a str,
        offset: i64,
        reason: &'a str,
        key: &'a [u8],
        payload: &'a [u8],
        headers: Value,
    ) -> Self {
        Self {
            source: "consumer",
            origin: format!("{topic}/0/{offset}"),
            topic,
            reason,
            event_id: None,
            key: Some(key),
            payload: Some(payload),
            headers,
        }
    }

    fn relay(topic: &'a str, event_id: Uuid, reason: &'a str) -> Self {
        Self {
            source: "relay",
            origin: event_id.to_string(),
            topic,
            reason,
            event_id: Some(event_id),
            key: None,
            payload: None,
            headers: json!([]),
        }
    }
}

async fn park(app: &TestApp, parked: Parked<'_>) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO dead_letters (source, origin, topic, reason, event_id, message_key, payload, headers)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(parked.source)
    .bind(&parked.origin)
    .bind(parked.topic)
    .bind(parked.reason)
    .bind(parked.event_id)
    .bind(parked.key)
    .bind(parked.payload)
    .bind(&parked.headers)
    .fetch_one(&app.pool)
    .await
    .expect("parking a dead letter")
}

/// `(replays, replayed)` of dead letter `id`.
async fn replays(app: &TestApp, id: i64) -> (i32, bool) {
    sqlx::query_as("SELECT replays, replayed_at IS NOT NULL FROM dead_letters WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("reading a dead letter")
}

/// The ids `dlq list --json <args>` prints, in order.
async fn listed(app: &TestApp, args: &[&str]) -> Vec<i64> {
    let output = oms(app, &[&["dlq", "list", "--json"], args].concat()).await;
    assert!(output.status.success(), "{args:?}: {output:?}");
    stdout(&output)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line")["id"].as_i64().expect("an id"))
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

#[tokio::test]
async fn dlq_list_filters_in_sql_and_show_prints_payload_and_headers() {
    let app = spawn_app().await;
    let (a, b) = (unique("a"), unique("b"));
    let text_payload = br#"{"correlationId": "\u0000"}"#;
    let headers = json!([{"key": "correlation-id", "value": b64(b"c-1")}, {"key": "bare", "value": null}]);
    let text = park(
        &app,
        Parked::consumer(&a, 5, "saga: unsupported Unicode escape sequence (22P05)", b"order-1", text_payload, headers),
    )
    .await;
    sqlx::query("UPDATE dead_letters SET parked_at = now() - interval '2 days' WHERE id = $1")
        .bind(text)
        .execute(&app.pool)
        .await
        .expect("aging");
    let binary_payload = [0xff, 0xfe, 0x00, b'x'];
    let binary =
        park(&app, Parked::consumer(&b, 7, "the body is not UTF-8", b"order-2", &binary_payload, json!([]))).await;
    let event_id = Uuid::new_v4();
    let relay = park(&app, Parked::relay(&a, event_id, "MessageSizeTooLarge: 1200000 bytes")).await;
    let replayed = park(&app, Parked::consumer(&b, 8, "an old one", b"order-3", b"{}", json!([]))).await;
    sqlx::query("UPDATE dead_letters SET replays = 1, replayed_at = now() WHERE id = $1")
        .bind(replayed)
        .execute(&app.pool)
        .await
        .expect("replayed");

    let since = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let b_origins = format!("{b}/");
    let cases: [(&[&str], Vec<i64>); 10] = [
        (&[], vec![text, binary, relay]),
        (&["--all"], vec![text, binary, relay, replayed]),
        (&["--source", "relay"], vec![relay]),
        (&["--source", "consumer"], vec![text, binary]),
        (&["--reason", "UNICODE escape"], vec![text]),
        (&["--origin", &b_origins], vec![binary]),
        (&["--origin", &b_origins, "--all"], vec![binary, replayed]),
        (&["--topic", &a], vec![text, relay]),
        (&["--since", &since], vec![binary, relay]),
        (&["--topic", &a, "--source", "consumer"], vec![text]),
    ];
    for (args, expected) in cases {
        assert_eq!(listed(&app, args).await, expected, "dlq list {args:?}");
    }
    assert_eq!(
        listed(&app, &["--origin", &event_id.to_string()[..8]]).await,
        vec![relay],
        "a relay's origin is its event id"
    );

    let line: Value =
        serde_json::from_str(stdout(&oms(&app, &["dlq", "list", "--json", "--source", "relay"]).await).trim())
            .expect("json");
    assert_eq!(
        (&line["source"], &line["topic"], &line["reason"], &line["eventId"], &line["replays"]),
        (&json!("relay"), &json!(a), &json!("MessageSizeTooLarge: 1200000 bytes"), &json!(event_id), &json!(0))
    );
    let table = oms(&app, &["dlq", "list"]).await;
    let table_text = stdout(&table);
    assert!(table.status.success(), "{table:?}");
    for expected in ["parked at", "MessageSizeTooLarge", &a, &format!("{b}/0/7"), "3 dead letters"] {
        assert!(table_text.contains(expected), "{expected} missing from\n{table_text}");
    }
    let bad_time = oms(&app, &["dlq", "list", "--since", "yesterday"]).await;
    assert!(
        !bad_time.status.success() && String::from_utf8_lossy(&bad_time.stderr).contains("--since"),
        "{bad_time:?}"
    );

    let shown = |id: i64| {
        let app = &app;
        async move {
            let output = oms(app, &["dlq", "show", &id.to_string(), "--json"]).await;
            assert!(output.status.success(), "{output:?}");
            serde_json::from_str::<Value>(&stdout(&output)).expect("one JSON object")
        }
    };
    let shown_text = shown(text).await;
    assert_eq!(
        shown_text["payload"],
        json!({"utf8": r#"{"correlationId": "\u0000"}"#}),
        "text stays text (the escape is six characters)"
    );
    assert_eq!(shown_text["key"], json!({"utf8": "order-1"}));
    assert_eq!(
        shown_text["headers"],
        json!([{"key": "correlation-id", "value": {"utf8": "c-1"}}, {"key": "bare", "value": null}])
    );
    assert_eq!(shown_text["reason"], "saga: unsupported Unicode escape sequence (22P05)");
    let shown_binary = shown(binary).await;
    assert_eq!(
        shown_binary["payload"],
        json!({"base64": b64(&binary_payload)}),
        "invalid UTF-8 with a NUL is shown as base64"
    );
    assert_eq!(
        (shown_binary["origin"].clone(), shown_binary["headers"].clone()),
        (json!(format!("{b}/0/7")), json!([]))
    );
    assert_eq!(
        (shown(relay).await["payload"].clone(), shown(relay).await["eventId"].clone()),
        (Value::Null, json!(event_id))
    );

    let human = stdout(&oms(&app, &["dlq", "show", &text.to_string()]).await);
    for expected in [
        "correlation-id: c-1",
        r#"{"correlationId": "\u0000"}"#,
        "unsupported Unicode escape sequence",
        &format!("{a}/0/5"),
    ] {
        assert!(human.contains(expected), "{expected} missing from\n{human}");
    }
    assert!(
        stdout(&oms(&app, &["dlq", "show", &binary.to_string()]).await)
            .contains(&format!("(base64) {}", b64(&binary_payload)))
    );
    let help = stdout(&oms(&app, &["dlq", "replay", "--help"]).await);
    for flag in [
        "--source",
        "--reason",
        "--origin",
        "--topic",
        "--since",
        "--id",
        "--dry-run",
        "--again",
        "--kafka-brokers",
        "DATABASE_URL",
    ] {
        assert!(help.contains(flag), "dlq replay --help names {flag}:\n{help}");
    }
    let unknown = oms(&app, &["dlq", "show", "424242"]).await;
    assert!(
        !unknown.status.success()
            && String::from_utf8_lossy(&unknown.stderr).contains("there is no dead letter 424242"),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn dlq_replay_redrives_each_dead_letter_once_to_its_topic_and_marks_it() {
    let app = spawn_app().await;
    let order = app.place_order("alice", &[("mug", 1)]).await;
    let order_id = order["orderId"].as_str().expect("an order id").to_owned();
    let history = app.events(&order_id).await.data(StatusCode::OK).clone();
    let event_id: Uuid = history[0]["eventId"].as_str().expect("an event id").parse().expect("a UUID");
    let (outcomes, orders) = (unique("outcomes"), unique("orders"));

    let hostile = b"{\"x\": \"\0\"}\xff";
    let headers = json!([{"key": "correlation-id", "value": b64(b"c-1")}, {"key": "binary", "value": b64(&[0, 1, 255])}, {"key": "bare", "value": null}]);
    let message = park(&app, Parked::consumer(&outcomes, 41, "22P05", b"k-1", hostile, headers)).await;
    let event = park(&app, Parked::relay(&orders, event_id, "MessageSizeTooLarge")).await;
    let old = park(&app, Parked::consumer(&outcomes, 40, "replayed before", b"k-0", b"{}", json!([]))).await;
    sqlx::query("UPDATE dead_letters SET replays = 1, replayed_at = now() WHERE id = $1")
        .bind(old)
        .execute(&app.pool)
        .await
        .expect("replayed");
    let kafka = ["--kafka-brokers", &broker(), "--topic-order-events", &orders];
    let replay = async |extra: &[&str]| oms(&app, &[&["dlq", "replay"], &kafka[..], extra].concat()).await;

    let dry = replay(&["--dry-run"]).await;
    assert!(dry.status.success(), "{dry:?}");
    assert!(stdout(&dry).contains("would re-drive 2") && stdout(&dry).contains("skipped 1"), "{}", stdout(&dry));
    assert_eq!(
        (replays(&app, message).await, replays(&app, event).await),
        ((0, false), (0, false)),
        "a dry run changes nothing"
    );

    let first = replay(&[]).await;
    assert!(first.status.success(), "{first:?}");
    let summary = stdout(&first);
    for expected in [
        "re-driven 2 (".to_owned(),
        format!("1 to {outcomes}"),
        format!("1 to {orders}"),
        "failed 0".to_owned(),
        "skipped 1".to_owned(),
    ] {
        assert!(summary.contains(&expected), "{expected} missing from\n{summary}");
    }
    assert_eq!(
        (replays(&app, message).await, replays(&app, event).await),
        ((1, true), (1, true)),
        "marked once acknowledged"
    );
    assert_eq!(replays(&app, old).await, (1, true), "one replayed before is left alone");

    let produced = read_topic(&outcomes, 1).await;
    let replay_of = message.to_string();
    let expected_headers: Vec<(String, Option<Vec<u8>>)> = vec![
        ("correlation-id".to_owned(), Some(b"c-1".to_vec())),
        ("binary".to_owned(), Some(vec![0, 1, 255])),
        ("bare".to_owned(), None),
        ("dlq-replay-of".to_owned(), Some(replay_of.into_bytes())),
    ];
    assert_eq!(
        produced,
        vec![Received { key: Some(b"k-1".to_vec()), payload: Some(hostile.to_vec()), headers: expected_headers }],
        "the message, byte for byte, back on the topic it came from"
    );
    let published = read_topic(&orders, 1).await;
    assert_eq!(published.len(), 1, "{published:?}");
    let body: Value = serde_json::from_slice(published[0].payload.as_deref().expect("a body")).expect("a JSON body");
    assert_eq!(
        (&body["eventId"], &body["eventType"], &body["aggregateId"]),
        (&json!(event_id), &json!("OrderPlaced"), &json!(order_id))
    );
    assert_eq!(published[0].key.as_deref(), Some(order_id.as_bytes()), "keyed by order id, as the relay does");
    assert_eq!(published[0].header("dlq-replay-of"), Some(event.to_string().as_bytes()));
    assert_eq!(published[0].header("event-id"), Some(event_id.to_string().as_bytes()));

    let second = replay(&[]).await;
    assert!(
        second.status.success() && stdout(&second).contains("re-driven 0") && stdout(&second).contains("skipped 3"),
        "{}",
        stdout(&second)
    );
    assert_eq!(
        (read_topic(&outcomes, 1).await.len(), read_topic(&orders, 1).await.len()),
        (1, 1),
        "a second replay re-drives nothing"
    );

    let again = replay(&["--again", "--id", &message.to_string()]).await;
    assert!(
        again.status.success() && stdout(&again).contains(&format!("re-driven 1 (1 to {outcomes})")),
        "{}",
        stdout(&again)
    );
    assert_eq!(read_topic(&outcomes, 2).await.len(), 2);
    assert_eq!((replays(&app, message).await, replays(&app, event).await), ((2, true), (1, true)));
}

#[tokio::test]
async fn dlq_replay_reports_what_fails_again_leaves_it_unmarked_and_exits_non_zero() {
    let app = spawn_app().await;
    // Long enough that its message exceeds the smallest message size a producer allows.
    let items: Vec<(String, u32)> = (0..30).map(|i| (format!("a-product-with-a-rather-long-name-{i}"), 1)).collect();
    let items: Vec<(&str, u32)> = items.iter().map(|(product, quantity)| (product.as_str(), *quantity)).collect();
    let order = app.place_order("bob", &items).await;
    let order_id = order["orderId"].as_str().expect("an order id").to_owned();
    let event_id: Uuid = app.events(&order_id).await.data(StatusCode::OK)[0]["eventId"]
        .as_str()
        .expect("an event id")
        .parse()
        .expect("a UUID");
    let orders = unique("orders");
    let large = park(&app, Parked::relay(&orders, event_id, "MessageSizeTooLarge")).await;
    let missing = park(&app, Parked::relay(&orders, Uuid::new_v4(), "does not decode")).await;
    let kafka = ["--kafka-brokers", &broker(), "--topic-order-events", &orders];
    let replay = async |extra: &[&str]| oms(&app, &[&["dlq", "replay"], &kafka[..], extra].concat()).await;

    let unknown = replay(&["--id", &large.to_string(), "--id", "424242"]).await;
    assert!(
        !unknown.status.success()
            && String::from_utf8_lossy(&unknown.stderr).contains("there is no dead letter 424242"),
        "{unknown:?}"
    );
    assert_eq!(replays(&app, large).await, (0, false), "an unknown id replays nothing");

    let unreachable = oms(&app, &["dlq", "replay", "--kafka-brokers", "127.0.0.1:1"]).await;
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        !unreachable.status.success() && stderr.contains("nothing was replayed") && stderr.contains("does not answer"),
        "{unreachable:?}"
    );
    assert_eq!(replays(&app, large).await, (0, false), "an unreachable broker replays nothing");

    let failed = replay(&["--kafka-producer-property", "message.max.bytes=1000"]).await;
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    let summary = stdout(&failed);
    for expected in [
        "re-driven 0",
        "failed 2",
        "MessageSizeTooLarge",
        &format!("event {} is not in the event store", missing_event(&app, missing).await),
    ] {
        assert!(summary.contains(expected), "{expected} missing from\n{summary}");
    }
    assert_eq!(
        (replays(&app, large).await, replays(&app, missing).await),
        ((0, false), (0, false)),
        "what failed is not marked"
    );

    let fixed = replay(&["--id", &large.to_string()]).await;
    assert!(fixed.status.success() && stdout(&fixed).contains(&format!("re-driven 1 (1 to {orders})")), "{fixed:?}");
    assert_eq!(replays(&app, large).await, (1, true));
    assert_eq!(read_topic(&orders, 1).await.len(), 1);
}

async fn missing_event(app: &TestApp, id: i64) -> Uuid {
    sqlx::query_scalar("SELECT event_id FROM dead_letters WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("the event id")
}
