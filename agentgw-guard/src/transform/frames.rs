//! The frames a stream transform reads and writes: SSE events or JSON lines, behind one trait.

use std::borrow::Cow;

use agentgw_core::ndjson::Line;
use agentgw_core::sse::{Event, Frame};

/// What the transform needs of the frames of a stream: SSE events or JSON lines.
pub(super) trait Unit: Sized {
    /// What the transform outputs.
    type Frame: From<Self>;
    /// Raw text (data that is not JSON) is written in place between JSON frames, so held raw
    /// text must be released before the next JSON frame.
    const INLINE_RAW: bool;

    /// The data: JSON, or text.
    fn data(&self) -> &str;
    fn set_data(&mut self, data: String);
    /// The SSE event type, if any.
    fn name(&self) -> Option<&str>;
    /// OpenAI's `[DONE]` sentinel.
    fn is_done(&self) -> bool;
    /// A frame releasing held text, shaped like a position's template.
    fn synthesized(name: Option<String>, data: String) -> Self;
    /// The frame that ends a cut stream.
    fn error(data: String) -> Self;
    /// A frame releasing held raw text.
    fn raw(text: String) -> Self;
    /// The text this frame adds to the raw text stream.
    fn raw_input(&self) -> Cow<'_, str>;
    /// This frame, carrying released raw text instead of its own.
    fn with_raw(self, text: String) -> Self;
}

impl Unit for Event {
    type Frame = Frame;
    const INLINE_RAW: bool = false;

    fn data(&self) -> &str {
        &self.data
    }

    fn set_data(&mut self, data: String) {
        self.data = data;
    }

    fn name(&self) -> Option<&str> {
        self.event.as_deref()
    }

    fn is_done(&self) -> bool {
        Event::is_done(self)
    }

    fn synthesized(name: Option<String>, data: String) -> Self {
        let mut event = Event::data(data);
        event.event = name;
        event
    }

    fn error(data: String) -> Self {
        Event::data(data).with_event("error")
    }

    fn raw(text: String) -> Self {
        Event::data(text)
    }

    fn raw_input(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.data)
    }

    fn with_raw(mut self, text: String) -> Self {
        self.data = text;
        self
    }
}

impl Unit for Line {
    type Frame = Line;
    const INLINE_RAW: bool = true;

    fn data(&self) -> &str {
        &self.text
    }

    fn set_data(&mut self, data: String) {
        self.text = data;
    }

    fn name(&self) -> Option<&str> {
        None
    }

    fn is_done(&self) -> bool {
        false
    }

    fn synthesized(_name: Option<String>, data: String) -> Self {
        Line::new(data)
    }

    fn error(data: String) -> Self {
        Line::new(data)
    }

    fn raw(text: String) -> Self {
        Line::unterminated(text)
    }

    fn raw_input(&self) -> Cow<'_, str> {
        if self.terminated {
            Cow::Owned(format!("{}\n", self.text))
        } else {
            Cow::Borrowed(&self.text)
        }
    }

    fn with_raw(self, text: String) -> Self {
        Line::unterminated(text)
    }
}
