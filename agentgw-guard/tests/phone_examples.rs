//! Recall of `PHONE_NUMBER` on the example numbers of libphonenumber's metadata.
//!
//! The metadata carries an example number for every number type of every region (fixed line,
//! mobile, toll free, ...). Each example of the default regions is written the way the
//! region writes it nationally and internationally (libphonenumber's own formatter), put in
//! a sentence, and must be found with its exact span. Run with `--nocapture` for the table.

use agentgw_guard::{Builtin, PatternSet};
use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, country};

/// The regions of the default `phoneNumber.regions`.
const REGIONS: &[&str] = &[
    "US", "CA", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "MX", "IN", "JP", "AU",
];

/// The floor of recall per region and mode: every example is found.
const FLOOR: f64 = 1.0;

#[test]
fn metadata_examples_of_the_default_regions_are_found() {
    let set = PatternSet::builder()
        .builtin(Builtin::PhoneNumber)
        .build()
        .unwrap();
    let mut failures = Vec::new();
    let mut below = Vec::new();
    println!(
        "{:<4} {:>8} {:>9} {:>13}",
        "", "examples", "national", "international"
    );
    for region in REGIONS {
        let meta = DATABASE.by_id(*region).unwrap();
        let d = meta.descriptors();
        // The types of numbers people write in messages; pagers, UANs and voicemail access
        // numbers are left out.
        let examples: Vec<&str> = [
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|desc| desc.example())
        .collect();
        let id: country::Id = region.parse().unwrap();
        let mut found = [0usize; 2];
        for example in &examples {
            let number = phonenumber::parse(Some(id), example).unwrap();
            for (i, mode) in [Mode::National, Mode::International]
                .into_iter()
                .enumerate()
            {
                let written = phonenumber::format(&number).mode(mode).to_string();
                let text = format!("Call {written} today.");
                let hits: Vec<&str> = set.find_iter(&text).map(|m| &text[m.range()]).collect();
                if hits == [written.as_str()] {
                    found[i] += 1;
                } else {
                    failures.push(format!("{region} {mode:?} {written:?}: {hits:?}"));
                }
            }
        }
        let recall = |n: usize| n as f64 / examples.len() as f64;
        println!(
            "{region:<4} {:>8} {:>9.3} {:>13.3}",
            examples.len(),
            recall(found[0]),
            recall(found[1])
        );
        if recall(found[0]) < FLOOR || recall(found[1]) < FLOOR {
            below.push(*region);
        }
    }
    for failure in &failures {
        println!("missed: {failure}");
    }
    assert!(below.is_empty(), "below {FLOOR}: {below:?}, {failures:#?}");
}
