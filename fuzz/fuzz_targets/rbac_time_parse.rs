//! CEL `duration()` and `timestamp()` string parsers of agentgw-rbac: never panic, and what
//! parses prints back to a string that parses to the same value.
#![no_main]

use agentgw_rbac::expr::{Duration, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(duration) = text.parse::<Duration>() {
        let printed = duration.to_string();
        assert_eq!(printed.parse::<Duration>().ok(), Some(duration), "{text:?} -> {printed}");
    }
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        let printed = timestamp.to_string();
        assert_eq!(printed.parse::<Timestamp>().ok(), Some(timestamp), "{text:?} -> {printed}");
    }
});
