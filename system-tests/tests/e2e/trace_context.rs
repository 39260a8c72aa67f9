//! One order's trace spans both services: a request that arrives with a W3C
//! `traceparent` places an order whose event carries the trace to the inventory
//! service through Kafka headers; the saga's outcome carries it back; both services
//! export their spans of that trace over OTLP (to a collector stand-in here).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use serde_json::json;
use system_tests::{ProcessSystem, broker};

/// Bodies of the export requests a collector stand-in received.
type Exports = Arc<Mutex<Vec<Bytes>>>;

/// An OTLP/HTTP collector stand-in on a free port that keeps every request body.
async fn collector() -> (String, Exports) {
    let exports: Exports = Arc::default();
    let app = Router::new().fallback(post({
        let exports = exports.clone();
        move |body: Bytes| async move { exports.lock().expect("lock").push(body) }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, exports)
}

/// The 16 bytes of a trace id given in hex, as OTLP's protobuf carries them.
fn trace_id_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
}

fn contains(body: &[u8], needle: &[u8]) -> bool {
    body.windows(needle.len()).any(|window| window == needle)
}

/// The trace id of a `traceparent` value (`00-<trace id>-<span id>-<flags>`).
fn trace_id_of(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_orders_trace_crosses_kafka_into_the_inventory_service_and_back() {
    let (endpoint, exports) = collector().await;
    let mut system = ProcessSystem::start(3, &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())])
        .await
        .expect("starting both services as processes");
    let api = system.api.clone();
    api.add_product("lamp", 5, 1).await.expect("adding a product");

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = api
        .http
        .post(format!("{}/oms/orders", api.oms))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"userId": "u-trace", "orderItems": [{"productId": "lamp", "quantity": 2}]}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 201);
    let body: serde_json::Value = response.json().await.expect("JSON");
    let order_id = body["data"]["orderId"].as_str().expect("order id").to_owned();
    let order = api.resolved_order(&order_id, Duration::from_secs(30)).await.expect("resolved");
    assert_eq!(order["status"], "EXECUTED", "{order}");

    for topic in [system.kafka.topics.order_events.clone(), system.kafka.topics.order_outcomes.clone()] {
        let messages = broker::read_topic_async(&system.kafka, &topic, Duration::from_secs(30)).await.expect("reading");
        let of_order: Vec<_> = messages.iter().filter(|m| m.key.as_deref() == Some(order_id.as_str())).collect();
        assert!(!of_order.is_empty(), "{topic} has messages of the order");
        for message in of_order {
            let traceparent = message
                .header("traceparent")
                .unwrap_or_else(|| panic!("a message on {topic} carries the trace: {:?}", message.headers));
            assert_eq!(trace_id_of(traceparent), Some(trace_id), "{topic}: {traceparent}");
        }
    }

    // Stopping flushes each service's span exporter.
    system.oms.terminate(Duration::from_secs(10)).await.expect("the OMS stops");
    system.inventory.terminate(Duration::from_secs(10)).await.expect("the inventory service stops");
    let exports = exports.lock().expect("lock");
    let id = trace_id_bytes(trace_id);
    for service in ["oms", "inventory"] {
        let resource = format!("\n{}{service}", char::from(service.len() as u8));
        assert!(
            exports.iter().any(|body| contains(body, &id) && contains(body, resource.as_bytes())),
            "{service} exported spans of the order's trace ({} exports received)",
            exports.len()
        );
    }
    let _ = std::fs::remove_dir_all(&system.log_dir);
}
