//! Keys fetched from a JWKS URL.
//!
//! The first fetch starts when the layer is built; until it succeeds the provider has no keys
//! and its tokens are rejected (fail closed), and [`crate::JwtLayer::is_ready`] says `false`.
//! A background task fetches again every `cacheDuration` (sooner, with backoff, after a failure)
//! and stops when the last layer using the keys is dropped. A token naming a `kid` the set does
//! not have triggers a fetch; such fetches are rate-limited (`minRefetchInterval`) and every
//! request waiting for keys joins the one fetch in flight. A failed fetch never replaces keys:
//! the last good set keeps serving.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use super::config::RemoteJwks;
use super::keys::KeySet;
use super::verify::WaitFuture;
use crate::error::Error;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Longest wait between retries after failures.
const MAX_RETRY: Duration = Duration::from_secs(30);
const FIRST_RETRY: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("status {0}")]
    Status(http::StatusCode),
    #[error("document larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Parse(String),
}

#[derive(Debug, Clone, Copy, Default)]
struct Fetched {
    /// Completed fetches, successful or not.
    count: u64,
    ok: bool,
}

#[derive(Default)]
struct FetchState {
    in_flight: bool,
    last_on_demand: Option<Instant>,
}

pub(crate) struct RemoteKeys {
    url: String,
    client: reqwest::Client,
    refresh_every: Duration,
    min_refetch: Duration,
    timeout: Duration,
    keys: ArcSwapOption<KeySet>,
    loaded: watch::Sender<bool>,
    state: Mutex<FetchState>,
    fetched: watch::Sender<Fetched>,
}

impl RemoteKeys {
    /// Checks the configuration at `field`, then starts fetching in the background.
    pub(crate) fn start(config: &RemoteJwks, field: &str) -> Result<Arc<Self>, Error> {
        let url = config
            .resolve_url()
            .map_err(|(sub, reason)| Error::invalid(format!("{field}.{sub}"), reason))?;
        for (name, value) in [
            ("cacheDuration", config.cache_duration),
            ("timeout", config.timeout),
        ] {
            if value.is_zero() {
                return Err(Error::invalid(
                    format!("{field}.{name}"),
                    "must be greater than zero",
                ));
            }
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime {
            field: field.to_owned(),
        })?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| Error::invalid(field, format!("cannot build the HTTP client: {e}")))?;
        let keys = Arc::new(RemoteKeys {
            url,
            client,
            refresh_every: config.cache_duration,
            min_refetch: config.min_refetch_interval,
            timeout: config.timeout,
            keys: ArcSwapOption::empty(),
            loaded: watch::Sender::new(false),
            state: Mutex::new(FetchState::default()),
            fetched: watch::Sender::new(Fetched::default()),
        });
        runtime.spawn(refresh_loop(Arc::downgrade(&keys)));
        Ok(keys)
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Runs `f` with the current key set (`None` before the first successful fetch).
    pub(crate) fn with_keys<R>(&self, f: impl FnOnce(Option<&KeySet>) -> R) -> R {
        let guard = self.keys.load();
        f(guard.as_deref())
    }

    pub(crate) fn is_ready(&self) -> bool {
        *self.loaded.borrow()
    }

    /// `up` while a key set serves (even if the last refresh failed), `pending` before the
    /// first fetch completed, `down` when fetches failed and no key set was ever loaded.
    pub(crate) fn state(&self) -> agentgw_core::health::DependencyState {
        use agentgw_core::health::DependencyState;
        if self.is_ready() {
            DependencyState::Up
        } else if self.fetched.borrow().count == 0 {
            DependencyState::Pending
        } else {
            DependencyState::Down
        }
    }

    /// Resolves once a key set has been fetched.
    pub(crate) async fn ready(&self) {
        let mut loaded = self.loaded.subscribe();
        // The sender lives in `self`, so this only ends when keys are loaded.
        let _ = loaded.wait_for(|loaded| *loaded).await;
    }

    /// A wait for fresh keys after a token named a `kid` we do not have: joins the fetch in
    /// flight or starts one. `None` when a fetch was started too recently (rate limit) or no
    /// runtime is available.
    pub(crate) fn refetch(self: &Arc<Self>) -> Option<WaitFuture> {
        let mut done = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let done = self.fetched.subscribe();
            if !state.in_flight {
                let now = Instant::now();
                if state
                    .last_on_demand
                    .is_some_and(|last| now.duration_since(last) < self.min_refetch)
                {
                    return None;
                }
                let runtime = tokio::runtime::Handle::try_current().ok()?;
                state.last_on_demand = Some(now);
                self.spawn_fetch(&mut state, &runtime);
            }
            done
        };
        // A little longer than the fetch's own timeout, so the fetch decides.
        let limit = self.timeout + Duration::from_millis(100);
        Some(Box::pin(async move {
            let _ = tokio::time::timeout(limit, done.changed()).await;
        }))
    }

    /// Starts a fetch (or joins the one in flight) and waits for it; `true` when it succeeded.
    async fn refresh(self: &Arc<Self>) -> bool {
        let mut done = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let done = self.fetched.subscribe();
            if !state.in_flight {
                self.spawn_fetch(&mut state, &tokio::runtime::Handle::current());
            }
            done
        };
        if done.changed().await.is_err() {
            return false;
        }
        done.borrow().ok
    }

    /// The fetch runs in its own task, so a request that stops waiting (client gone) never
    /// leaves a fetch half done.
    fn spawn_fetch(self: &Arc<Self>, state: &mut FetchState, runtime: &tokio::runtime::Handle) {
        state.in_flight = true;
        let this = Arc::clone(self);
        runtime.spawn(async move {
            let ok = this.fetch_and_store().await;
            this.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .in_flight = false;
            this.fetched.send_modify(|fetched| {
                fetched.count = fetched.count.wrapping_add(1);
                fetched.ok = ok;
            });
        });
    }

    async fn fetch_and_store(&self) -> bool {
        match self.fetch().await {
            Ok(set) => {
                let unchanged = self
                    .keys
                    .load()
                    .as_deref()
                    .is_some_and(|current| current.same_keys(&set));
                if unchanged {
                    tracing::debug!(url = %self.url, "JWKS unchanged");
                } else {
                    tracing::info!(url = %self.url, keys = set.len(), "JWKS loaded");
                    self.keys.store(Some(Arc::new(set)));
                    self.loaded.send_replace(true);
                }
                true
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, has_keys = self.is_ready(),
                    "JWKS fetch failed; the last good key set (if any) keeps serving");
                false
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let mut response = self
            .client
            .get(&self.url)
            .header(
                http::header::ACCEPT,
                "application/json, application/jwk-set+json",
            )
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::from_jwks(&body).map_err(FetchError::Parse)
    }

    fn retry_delay(&self, failures: u32) -> Duration {
        let cap = self.refresh_every.min(MAX_RETRY);
        FIRST_RETRY.saturating_mul(1 << failures.min(16)).min(cap)
    }
}

async fn refresh_loop(keys: Weak<RemoteKeys>) {
    let mut failures = 0;
    loop {
        let Some(this) = keys.upgrade() else {
            return;
        };
        let delay = if this.refresh().await {
            failures = 0;
            this.refresh_every
        } else {
            let delay = this.retry_delay(failures);
            failures = failures.saturating_add(1);
            delay
        };
        // Hold no strong reference while sleeping: dropping the layer ends the loop.
        drop(this);
        tokio::time::sleep(delay).await;
    }
}
