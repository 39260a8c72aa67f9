//! Wiring: the service kit's start-up (`service_kit::wiring`) with the OMS's parts:
//! its routes, the outbox relay's route, the outcome consumer, the re-requests, the
//! payment deadline and the order view's follower.

use std::sync::Arc;
use std::time::Duration;

use projections::OrderViews;
use service_kit::{Named, Operated};

use crate::Settings;
use crate::orders::Orders;
use crate::outcomes::OutcomeHandler;
use crate::settings::Oms;

/// The consumer's task name: in readiness answers and on `pipeline_stalled{task}`.
const OUTCOME_CONSUMER: &str = "outcome consumer";

/// The OMS, bound to its port and ready to serve.
pub struct Application {
    service: service_kit::Service,
    orders: Arc<Orders>,
    rerequest_after: Duration,
    payment_timeout: Duration,
}

impl service_kit::Application for Application {
    type Settings = Settings;

    async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let foundation = service_kit::Foundation::connect(&settings.service, &migrations::OMS).await?;
        let orders = Arc::new(Orders::new(foundation.pool.clone()).notifying(foundation.notifier.clone()));
        let service = foundation.bind(crate::http::routes(orders.clone())).await?;
        Ok(Self {
            service,
            orders,
            rerequest_after: Duration::from_millis(settings.rerequest_after_ms),
            payment_timeout: Duration::from_millis(settings.payment_timeout_ms),
        })
    }

    fn port(&self) -> u16 {
        self.service.port()
    }

    /// Serves until `shutdown` completes while the relay, the outcome consumer, the
    /// re-requests, the payment deadline and the view follower run supervised beside
    /// it (see
    /// `service_kit::Service::serve`).
    async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { mut service, orders, rerequest_after, payment_timeout } = self;
        service.relay(<Oms as Operated>::route);
        service.consumer(
            OUTCOME_CONSUMER,
            |topics| &topics.order_outcomes,
            Arc::new(OutcomeHandler::new(orders.clone())),
        );
        if !rerequest_after.is_zero() {
            let (pool, orders, producer, kafka) =
                (service.pool().clone(), orders.clone(), service.producer(), service.kafka().clone());
            service.task("re-requests", move |stop| {
                let (pool, orders, producer, kafka) = (pool.clone(), orders.clone(), producer.clone(), kafka.clone());
                crate::rerequests::run(pool, orders, producer, kafka, rerequest_after, stop)
            });
        }
        if !payment_timeout.is_zero() {
            let (pool, orders) = (service.pool().clone(), orders.clone());
            service.task("payment deadline", move |stop| {
                crate::payment_deadline::run(pool.clone(), orders.clone(), payment_timeout, stop)
            });
        }
        service.view_follower::<OrderViews>(orders.events().clone());
        service.serve(Oms::IDENTITY.title, shutdown).await
    }
}
