//! Newline-delimited messages read with a bound: a line longer than the limit is never held.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line read by [`read_line`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A whole line, without its `\n` (nor a `\r` before it).
    Whole(Vec<u8>),
    /// The line is longer than the limit. With [`Overflow::Stop`] nothing more was read; with
    /// [`Overflow::Truncate`] this holds its first `max` bytes and the rest was skipped.
    TooLong(Vec<u8>),
}

/// What [`read_line`] does with a line over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Return at once (the stream is then out of step: the caller stops reading).
    Stop,
    /// Keep the first bytes, skip to the end of the line.
    Truncate,
}

/// Reads the next non-empty line of at most `max` bytes; `None` at the end of the stream (a
/// last line without `\n` is returned whole).
pub(crate) async fn read_line<R>(
    reader: &mut R,
    max: usize,
    overflow: Overflow,
) -> io::Result<Option<Line>>
where
    R: AsyncBufRead + Unpin,
{
    loop {
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            let available = reader.fill_buf().await?;
            if available.is_empty() {
                return Ok(match (line.is_empty(), too_long) {
                    (true, false) => None,
                    (_, true) => Some(Line::TooLong(line)),
                    (false, false) => Some(Line::Whole(trim_cr(line))),
                });
            }
            let (chunk, used, end) = match available.iter().position(|&b| b == b'\n') {
                Some(at) => (&available[..at], at + 1, true),
                None => (available, available.len(), false),
            };
            let room = max.saturating_sub(line.len());
            if chunk.len() > room {
                too_long = true;
                if overflow == Overflow::Stop {
                    return Ok(Some(Line::TooLong(Vec::new())));
                }
            }
            if !too_long || line.len() < max {
                line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            reader.consume(used);
            if end {
                break;
            }
        }
        if too_long {
            return Ok(Some(Line::TooLong(line)));
        }
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            return Ok(Some(Line::Whole(trim_cr(line))));
        }
    }
}

fn trim_cr(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn all(input: &[u8], max: usize, overflow: Overflow) -> Vec<Line> {
        // A tiny buffer: lines arrive in many pieces, as from a pipe.
        let mut reader = BufReader::with_capacity(3, input);
        let mut lines = Vec::new();
        while let Some(line) = read_line(&mut reader, max, overflow).await.unwrap() {
            let stop = matches!(line, Line::TooLong(_)) && overflow == Overflow::Stop;
            lines.push(line);
            if stop {
                break;
            }
        }
        lines
    }

    #[tokio::test]
    async fn lines_within_the_limit_are_whole() {
        let lines = all(b"{\"a\":1}\n\n  \r\n{\"b\":2}\r\nlast", 16, Overflow::Stop).await;
        assert_eq!(
            lines,
            [
                Line::Whole(b"{\"a\":1}".to_vec()),
                Line::Whole(b"{\"b\":2}".to_vec()),
                Line::Whole(b"last".to_vec()),
            ]
        );
        // Exactly the limit is allowed.
        let lines = all(b"12345678\n", 8, Overflow::Stop).await;
        assert_eq!(lines, [Line::Whole(b"12345678".to_vec())]);
    }

    #[tokio::test]
    async fn a_long_line_stops_or_is_truncated() {
        let lines = all(b"ok\n123456789\nnext\n", 8, Overflow::Stop).await;
        assert_eq!(
            lines,
            [Line::Whole(b"ok".to_vec()), Line::TooLong(Vec::new())]
        );
        let lines = all(b"123456789abcdef\nnext\n", 8, Overflow::Truncate).await;
        assert_eq!(
            lines,
            [
                Line::TooLong(b"12345678".to_vec()),
                Line::Whole(b"next".to_vec())
            ]
        );
    }
}
