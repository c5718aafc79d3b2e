//! [`Event`] and [`Frame`]: what a stream is made of.

/// One dispatched event of a stream.
///
/// `None` means the field was absent; `data` is empty when the event had no `data:` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The event type (`event:`); `None` means the default type, `message`.
    pub event: Option<String>,
    /// The data: the values of the `data:` lines joined with `\n`.
    pub data: String,
    /// The event id (`id:`).
    pub id: Option<String>,
    /// The reconnection time in milliseconds (`retry:`).
    pub retry: Option<u64>,
}

impl Event {
    /// An event of the default type carrying `data`.
    pub fn data(data: impl Into<String>) -> Self {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// Sets the event type (`event:`).
    #[must_use]
    pub fn with_event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(event.into());
        self
    }

    /// Sets the event id (`id:`).
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the reconnection time in milliseconds (`retry:`).
    #[must_use]
    pub fn with_retry(mut self, millis: u64) -> Self {
        self.retry = Some(millis);
        self
    }

    /// The event type, `message` when none (or an empty one) was given.
    pub fn event_type(&self) -> &str {
        match self.event.as_deref() {
            None | Some("") => "message",
            Some(event) => event,
        }
    }

    /// Whether this is OpenAI's end-of-stream sentinel: data exactly `[DONE]`.
    pub fn is_done(&self) -> bool {
        self.data == "[DONE]"
    }
}

/// One item of an event stream: an event, or a comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A dispatched event.
    Event(Event),
    /// A comment (a line starting with `:`), without the colon and one following space.
    /// Servers send comments as keep-alives.
    Comment(String),
}

impl From<Event> for Frame {
    fn from(event: Event) -> Self {
        Frame::Event(event)
    }
}
