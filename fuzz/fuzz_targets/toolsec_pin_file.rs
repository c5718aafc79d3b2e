//! `agentgw_toolsec::pins::PinFile`: the reviewed pin file replicas load.
//!
//! For any UTF-8 input: parsing never panics; a file that parses writes back (`to_yaml`) to a
//! text that parses to the same pins, and writing is stable (the written text writes itself
//! again unchanged), so a review diff only ever shows real changes.
#![no_main]

use agentgw_toolsec::pins::PinFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pins) = PinFile::from_yaml(text) else {
        return;
    };
    let written = pins.to_yaml();
    let again = PinFile::from_yaml(&written)
        .unwrap_or_else(|e| panic!("a written pin file does not parse: {e}\n{written}"));
    assert_eq!(again, pins, "written:\n{written}");
    assert_eq!(again.to_yaml(), written);
});
