//! [`PendingRequests`]: which method each request still waiting for its response called.

use std::collections::{HashMap, VecDeque};

use super::{Envelope, Id, Message};

/// Remembers the method of requests still waiting for their response, so a response can be
/// read in the light of the request it answers (a response to `tools/list` does not say it is
/// one).
///
/// Bounded: at most `capacity` requests are remembered; beyond that the oldest is forgotten
/// first. Not synchronized: keep one per session or stream, behind a lock if it is shared.
///
/// ```
/// use agentgw_core::mcp::{self, Id, PendingRequests};
///
/// let mut pending = PendingRequests::new(128);
/// let request = mcp::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)?;
/// pending.track(&request);
/// let response = mcp::parse(br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#)?;
/// let id = response.messages()[0].id().expect("a response has an id");
/// assert_eq!(pending.remove(id).as_deref(), Some("tools/list"));
/// assert!(pending.is_empty());
/// # Ok::<(), mcp::McpError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PendingRequests {
    capacity: usize,
    /// Id -> (insertion sequence number, method).
    entries: HashMap<Id, (u64, String)>,
    /// Insertion order; an entry whose sequence number no longer matches `entries` is stale and
    /// skipped (the id was answered or inserted again).
    order: VecDeque<(u64, Id)>,
    next_seq: u64,
}

impl PendingRequests {
    /// Remembers at most `capacity` requests. With a capacity of 0 nothing is remembered.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
        }
    }

    /// The most requests remembered at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many requests are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no request is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remembers that request `id` called `method`, replacing an earlier request with the same
    /// id. Returns the entry forgotten to stay within capacity, if any (with a capacity of 0,
    /// the entry just given).
    pub fn insert(&mut self, id: Id, method: impl Into<String>) -> Option<(Id, String)> {
        let method = method.into();
        if self.capacity == 0 {
            return Some((id, method));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let replaced = self.entries.insert(id.clone(), (seq, method)).is_some();
        self.order.push_back((seq, id));
        let evicted = if !replaced && self.entries.len() > self.capacity {
            self.evict_oldest()
        } else {
            None
        };
        // Replacements and removals leave stale entries behind; keep the queue bounded.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order
                .retain(|(seq, id)| entries.get(id).is_some_and(|(current, _)| current == seq));
        }
        evicted
    }

    /// Forgets request `id` and returns its method, typically when its response arrives.
    pub fn remove(&mut self, id: &Id) -> Option<String> {
        let (_, method) = self.entries.remove(id)?;
        self.drop_stale_front();
        Some(method)
    }

    /// Remembers every request of `envelope` (notifications and responses are ignored).
    /// Returns how many requests were remembered.
    pub fn track(&mut self, envelope: &Envelope) -> usize {
        if self.capacity == 0 {
            return 0;
        }
        let mut tracked = 0;
        for message in envelope.messages() {
            if let Message::Request { id, method, .. } = message {
                self.insert(id.clone(), method.as_str());
                tracked += 1;
            }
        }
        tracked
    }

    /// The method of the request `message` answers, forgetting that request; `None` for
    /// requests, notifications and unknown ids.
    pub fn resolve(&mut self, message: &Message) -> Option<String> {
        match message {
            Message::Response { id, .. } | Message::Error { id, .. } => self.remove(id),
            Message::Request { .. } | Message::Notification { .. } => None,
        }
    }

    fn evict_oldest(&mut self) -> Option<(Id, String)> {
        while let Some((seq, id)) = self.order.pop_front() {
            if self
                .entries
                .get(&id)
                .is_some_and(|(current, _)| *current == seq)
            {
                let (_, method) = self.entries.remove(&id)?;
                return Some((id, method));
            }
        }
        None
    }

    fn drop_stale_front(&mut self) {
        while let Some((seq, id)) = self.order.front() {
            if self
                .entries
                .get(id)
                .is_some_and(|(current, _)| current == seq)
            {
                break;
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::test_util::single;
    use crate::mcp::*;

    #[test]
    fn pending_requests_correlate_responses() {
        let mut pending = PendingRequests::new(8);
        let requests = parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},
                 {"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"x"}},
                 {"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
        )
        .expect("valid");
        assert_eq!(pending.track(&requests), 2);
        assert_eq!(pending.len(), 2);

        let response = single(br#"{"jsonrpc":"2.0","id":"b","error":{"code":1,"message":"x"}}"#);
        assert_eq!(pending.resolve(&response).as_deref(), Some("tools/call"));
        assert_eq!(pending.resolve(&response), None, "answered only once");
        // An id of another type does not match.
        assert_eq!(pending.remove(&Id::from("1")), None);
        let response = single(br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#);
        assert_eq!(pending.resolve(&response).as_deref(), Some("tools/list"));
        assert!(pending.is_empty());
        // Requests and notifications resolve nothing.
        assert_eq!(pending.resolve(&requests.messages()[0]), None);
        assert_eq!(pending.resolve(&requests.messages()[2]), None);
    }

    #[test]
    fn pending_requests_evict_oldest_first() {
        let mut pending = PendingRequests::new(2);
        assert_eq!(pending.capacity(), 2);
        assert_eq!(pending.insert(Id::from(1_i64), "a"), None);
        assert_eq!(pending.insert(Id::from(2_i64), "b"), None);
        assert_eq!(
            pending.insert(Id::from(3_i64), "c"),
            Some((Id::from(1_i64), "a".to_owned()))
        );
        assert_eq!(pending.len(), 2);
        assert_eq!(pending.remove(&Id::from(1_i64)), None);

        // Replacing an id refreshes it: the other one is now the oldest.
        assert_eq!(pending.insert(Id::from(2_i64), "b2"), None);
        assert_eq!(
            pending.insert(Id::from(4_i64), "d"),
            Some((Id::from(3_i64), "c".to_owned()))
        );
        assert_eq!(pending.remove(&Id::from(2_i64)).as_deref(), Some("b2"));
        assert_eq!(pending.remove(&Id::from(4_i64)).as_deref(), Some("d"));
        assert!(pending.is_empty());
    }

    #[test]
    fn pending_requests_stay_bounded() {
        let mut pending = PendingRequests::new(4);
        for n in 0..10_000_u64 {
            pending.insert(Id::from(n), "m");
            if n % 2 == 0 {
                pending.remove(&Id::from(n));
            }
            // Re-inserting the same id must not grow the queue without bound either.
            pending.insert(Id::from("same"), "m");
            assert!(pending.len() <= 4);
            assert!(
                pending.order.len() <= 8,
                "queue grew to {}",
                pending.order.len()
            );
        }
        let mut pending = PendingRequests::new(4);
        for n in 0..10_000_u64 {
            pending.insert(Id::from(n), "m");
            assert_eq!(pending.remove(&Id::from(n)).as_deref(), Some("m"));
            assert!(pending.order.len() <= 8);
        }
    }

    #[test]
    fn pending_requests_with_zero_capacity_remember_nothing() {
        let mut pending = PendingRequests::new(0);
        assert_eq!(
            pending.insert(Id::from(1_i64), "a"),
            Some((Id::from(1_i64), "a".to_owned()))
        );
        let request = parse(br#"{"jsonrpc":"2.0","id":1,"method":"x"}"#).expect("valid");
        assert_eq!(pending.track(&request), 0);
        assert!(pending.is_empty());
        assert_eq!(pending.remove(&Id::from(1_i64)), None);
    }
}
