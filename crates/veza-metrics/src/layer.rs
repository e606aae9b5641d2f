//! [`HttpMetricsLayer`]: a `tower::Layer` that records the HTTP server metrics of the catalog
//! for any hyper or axum service, with route templates as labels.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Method, Request, Response};
use http_body::Body;
use metrics::{Counter, Gauge, Histogram};
use tower_layer::Layer;
use tower_service::Service;
use veza_core::catalog::http as catalog;
use veza_core::publish::Late;

/// The route label of a path that matches no template.
pub const UNMATCHED: &str = "unmatched";

/// The methods that get their own label; any other is `OTHER`.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

/// Route templates (`/users/{id}`, `/users/:id/messages`): a path's `route` label is the first
/// template it matches, or [`UNMATCHED`], so labels stay bounded whatever paths clients send.
#[derive(Debug, Clone)]
pub struct Routes {
    templates: Vec<(String, Vec<Segment>)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param,
    /// `{*rest}` or `*`: matches the rest of the path.
    Rest,
}

impl Routes {
    /// Templates, tried in order. `{name}` or `:name` matches one segment, `{*name}` or `*`
    /// the rest of the path.
    pub fn new<I, S>(templates: I) -> Routes
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let templates = templates
            .into_iter()
            .map(|t| {
                let t = t.into();
                let segments = split(&t)
                    .map(|s| {
                        if s == "*" || s.starts_with("{*") {
                            Segment::Rest
                        } else if s.starts_with(':') || (s.starts_with('{') && s.ends_with('}')) {
                            Segment::Param
                        } else {
                            Segment::Literal(s.to_owned())
                        }
                    })
                    .collect();
                (t, segments)
            })
            .collect();
        Routes { templates }
    }

    /// The label for `path`.
    pub fn route_of(&self, path: &str) -> &str {
        self.index_of(path)
            .map_or(UNMATCHED, |i| self.templates[i].0.as_str())
    }

    fn index_of(&self, path: &str) -> Option<usize> {
        self.templates.iter().position(|(_, segments)| {
            let mut parts = split(path);
            for segment in segments {
                match segment {
                    Segment::Rest => return true,
                    Segment::Param => {
                        if parts.next().is_none() {
                            return false;
                        }
                    }
                    Segment::Literal(lit) => {
                        if parts.next() != Some(lit.as_str()) {
                            return false;
                        }
                    }
                }
            }
            parts.next().is_none()
        })
    }

    fn len(&self) -> usize {
        self.templates.len()
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Records `http_requests_total{method,route,status}`, `http_request_duration_seconds`,
/// `http_response_size_bytes` (when the body's size is known) and `http_requests_in_flight`.
///
/// Handles are registered once per (method, route) and kept, so a request costs no registry
/// lookup. A request whose service fails is counted with `status="error"`; one whose future
/// is dropped leaves the in-flight gauge all the same.
///
/// On plain hyper 1 (no axum): wrap the service with the layer, then adapt the tower service
/// with hyper-util's `TowerToHyperService`.
///
/// ```
/// use std::convert::Infallible;
///
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Empty, Full};
/// use hyper::body::Incoming;
/// use hyper_util::rt::TokioIo;
/// use hyper_util::service::TowerToHyperService;
/// use tower::ServiceBuilder;
/// use veza_metrics::{HttpMetricsLayer, Metrics, Routes};
///
/// async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
///     Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // In a service: `Metrics::builder().install()?`. Here a local recorder, for the doctest.
/// let (recorder, metrics) = Metrics::builder().system_metrics(false).build()?;
/// let _local = metrics::set_default_local_recorder(&recorder);
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// runtime.block_on(async {
///     let layer = HttpMetricsLayer::new(Routes::new(["/users/{id}"]));
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     tokio::spawn(async move {
///         while let Ok((stream, _)) = listener.accept().await {
///             let service = ServiceBuilder::new()
///                 .layer(layer.clone())
///                 .service(tower::service_fn(hello));
///             tokio::spawn(
///                 hyper::server::conn::http1::Builder::new()
///                     .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)),
///             );
///         }
///     });
///
///     // One request from a hyper client.
///     let stream = tokio::net::TcpStream::connect(addr).await?;
///     let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
///     tokio::spawn(conn);
///     let request = Request::get("/users/42").header("host", "x").body(Empty::<Bytes>::new())?;
///     let body = sender.send_request(request).await?.into_body().collect().await?;
///     assert_eq!(body.to_bytes(), "hello");
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })?;
/// let text = metrics.render();
/// assert!(text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 1"#));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HttpMetricsLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    routes: Routes,
    in_flight: Late<Gauge>,
    /// Requests in flight now (so that handles made after an install start right).
    in_flight_now: AtomicI64,
    /// One slot per (method, route), created on first use.
    slots: Late<Box<[OnceLock<SlotHandles>]>>,
}

#[derive(Debug)]
struct SlotHandles {
    duration: Histogram,
    size: Histogram,
    by_status: RwLock<Vec<(u16, Counter)>>,
    method: &'static str,
    route: String,
}

impl HttpMetricsLayer {
    /// A layer labelling requests with `routes`. The recorder may be installed before or
    /// after: handles made before an install are made again on the next request.
    pub fn new(routes: Routes) -> HttpMetricsLayer {
        let count = (METHODS.len() + 1) * (routes.len() + 1);
        HttpMetricsLayer {
            shared: Arc::new(Shared {
                in_flight: Late::new(|| metrics::gauge!(catalog::REQUESTS_IN_FLIGHT.name)),
                in_flight_now: AtomicI64::new(0),
                slots: Late::new(|| empty_slots(count)),
                routes,
            }),
        }
    }
}

impl Shared {
    /// The slot of a request: computed from the request head, before the inner service takes
    /// the request, so nothing of it (no path string) has to be kept.
    fn slot_index(&self, method: &Method, path: &str) -> usize {
        let m = METHODS
            .iter()
            .position(|x| x == method)
            .unwrap_or(METHODS.len());
        let r = self.routes.index_of(path).unwrap_or(self.routes.len());
        m * (self.routes.len() + 1) + r
    }

    fn slot(&self, index: usize) -> &SlotHandles {
        let (m, r) = (
            index / (self.routes.len() + 1),
            index % (self.routes.len() + 1),
        );
        let count = self.slots.get().len();
        self.slots.refresh(|| empty_slots(count));
        self.slots.get()[index].get_or_init(|| {
            let method = METHODS.get(m).map_or("OTHER", Method::as_str);
            let route = self
                .routes
                .templates
                .get(r)
                .map_or(UNMATCHED.to_owned(), |(t, _)| t.clone());
            SlotHandles {
                duration: metrics::histogram!(catalog::REQUEST_DURATION.name, "method" => method, "route" => route.clone()),
                size: metrics::histogram!(catalog::RESPONSE_SIZE.name, "method" => method, "route" => route.clone()),
                by_status: RwLock::new(Vec::new()),
                method,
                route,
            }
        })
    }
}

impl SlotHandles {
    fn count(&self, status: u16) {
        let found = self
            .by_status
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, c)| c.clone());
        let counter = found.unwrap_or_else(|| {
            let label = if status == 0 { "error".to_owned() } else { status.to_string() };
            let counter = metrics::counter!(catalog::REQUESTS.name, "method" => self.method, "route" => self.route.clone(), "status" => label);
            self.by_status
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((status, counter.clone()));
            counter
        });
        counter.increment(1);
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> HttpMetrics<S> {
        HttpMetrics {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`HttpMetricsLayer`].
#[derive(Debug, Clone)]
pub struct HttpMetrics<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Leaves the in-flight gauge when the request ends, however it ends.
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight_now.fetch_sub(1, Ordering::Relaxed);
        self.0.in_flight.get().decrement(1.0);
    }
}

/// One empty slot per (method, route).
fn empty_slots(count: usize) -> Box<[OnceLock<SlotHandles>]> {
    (0..count).map(|_| OnceLock::new()).collect()
}

impl Shared {
    /// Enters a request in the in-flight gauge. Handles made again after an install start
    /// from the requests already in flight, so the gauge stays right across the switch.
    fn enter(self: &Arc<Self>) -> InFlight {
        let now = self.in_flight_now.fetch_add(1, Ordering::Relaxed) + 1;
        if self
            .in_flight
            .refresh(|| metrics::gauge!(catalog::REQUESTS_IN_FLIGHT.name))
        {
            self.in_flight.get().set(now as f64);
        } else {
            self.in_flight.get().increment(1.0);
        }
        InFlight(Arc::clone(self))
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpMetrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let shared = self.shared.clone();
        let guard = shared.enter();
        let started = Instant::now();
        let slot = shared.slot_index(req.method(), req.uri().path());
        let trace_id = crate::exemplar::traceparent_trace_id(req.headers()).map(str::to_owned);
        let future = self.inner.call(req);
        Box::pin(async move {
            let result = future.await;
            let slot = shared.slot(slot);
            let took = started.elapsed();
            match &trace_id {
                // The request's trace on the duration bucket it fell in (OpenMetrics scrapes).
                Some(id) => crate::exemplar::with_trace_id(id, || slot.duration.record(took)),
                None => slot.duration.record(took),
            }
            match &result {
                Ok(response) => {
                    slot.count(response.status().as_u16());
                    if let Some(size) = response.body().size_hint().exact() {
                        slot.size.record(size as f64);
                    }
                }
                Err(_) => slot.count(0),
            }
            drop(guard);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_segments() {
        let routes = Routes::new(["/users/{id}", "/users/:id/messages", "/static/{*path}", "/"]);
        assert_eq!(routes.route_of("/users/42"), "/users/{id}");
        assert_eq!(routes.route_of("/users/42/messages"), "/users/:id/messages");
        assert_eq!(routes.route_of("/users/42/friends"), UNMATCHED);
        assert_eq!(routes.route_of("/static/css/site.css"), "/static/{*path}");
        assert_eq!(routes.route_of("/"), "/");
        assert_eq!(routes.route_of("/nope"), UNMATCHED);
    }
}
