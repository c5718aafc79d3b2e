//! `PHONE_NUMBER` validated with libphonenumber's metadata: national formats of the configured
//! regions are found, decoys (timestamps, order numbers, ZIP+4, versions, IPs, card-like
//! numbers) are not, `phoneNumber.regions` decides which countries' national numbers count,
//! and a bad region is a configuration error naming its YAML path. The last test masks a
//! request over a real socket.

use agentgw_guard::{
    Builtin, DEFAULT_PHONE_REGIONS, Error, PatternSet, PhoneNumberConfig, PromptGuardConfig,
    PromptGuardLayer, RegexConfig,
};
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::net::TcpListener;

fn phones(regions: Option<&[&str]>) -> PatternSet {
    let builder = PatternSet::builder().builtin(Builtin::PhoneNumber);
    match regions {
        Some(regions) => builder.phone_regions(regions.iter().copied()),
        None => builder,
    }
    .build()
    .unwrap()
}

/// The phone numbers `set` finds in `text`.
fn found<'t>(set: &PatternSet, text: &'t str) -> Vec<&'t str> {
    set.find_iter(text).map(|m| &text[m.range()]).collect()
}

/// National numbers (no country code) of each default region, written the way that country
/// writes them, in a sentence.
const NATIONAL: &[(&str, &str)] = &[
    ("US", "(415) 555-2671"),
    ("US", "415-555-2671"),
    ("US", "1-415-555-2671"),
    ("CA", "(807) 409-6053"),
    ("GB", "020 7946 0958"),
    ("GB", "(0118) 496 0850"),
    ("GB", "07400 123456"),
    ("DE", "030 901820"),
    ("DE", "(04814) 798272"),
    ("DE", "0151 23456789"),
    ("FR", "01 42 68 53 00"),
    ("FR", "06 12 34 56 78"),
    ("ES", "912 34 56 78"),
    ("ES", "612 34 56 78"),
    ("IT", "02 1234 5678"),
    ("IT", "312 345 6789"),
    ("NL", "020 555 1234"),
    ("NL", "06-12345678"),
    ("BR", "(11) 91234-5678"),
    ("BR", "(21) 3456-7890"),
    ("BR", "0800 942 0620"),
    ("MX", "55 1234 5678"),
    ("IN", "98765 43210"),
    ("IN", "011 2345 6789"),
    ("JP", "03-1234-5678"),
    ("JP", "090-1234-5678"),
    ("AU", "0412 345 678"),
    ("AU", "(02) 9876 5432"),
];

#[test]
fn national_formats_of_the_default_regions_are_found() {
    let set = phones(None);
    for (region, number) in NATIONAL {
        let text = format!("Please call {number} tomorrow.");
        assert_eq!(found(&set, &text), [*number], "{region}: {text}");
        // Alone, the region of the number is enough.
        let alone = phones(Some(&[region]));
        assert_eq!(found(&alone, &text), [*number], "{region} alone: {text}");
    }
}

#[test]
fn international_numbers_count_whatever_the_regions() {
    let set = phones(Some(&["US"]));
    for number in [
        "+44 20 7946 0958",
        "+49 30 901820",
        "+33 (0)1 42 68 53 00",
        "+91 98765 43210",
        "+55 11 91234-5678",
        "+81 3-1234-5678",
        "+61 412 345 678",
        "+34 912 34 56 78",
        "+1 (415) 555-2671",
    ] {
        let text = format!("Reach me on {number}.");
        assert_eq!(found(&set, &text), [number], "{text}");
    }
    // A country calling code that does not exist, or a national number of impossible length.
    for bad in ["+999 123 456 789", "+44 12", "+1 111 555 2671"] {
        let text = format!("Reach me on {bad}.");
        assert!(found(&set, &text).is_empty(), "{text}");
    }
}

#[test]
fn decoys_are_not_phone_numbers() {
    let set = phones(None);
    for text in [
        // Timestamps: Unix seconds and milliseconds, ISO and European dates, times.
        "created_at=1432093617 updated_at=1662997519976",
        "logged at 2018-10-21T14:21:32Z",
        "due on 15-09-2019 or 2019 10 21",
        // Order numbers and tracking numbers.
        "Order 50690611 and ORD-2019-868115 shipped, tracking 1ZA84CXE9NTWJ8XNEH.",
        "order number 8823144013 was refunded",
        // ZIP+4.
        "Ship to Reno, NV 89108-9152.",
        // Versions and IPs.
        "Upgrade to 10.0.12367.1555 or 6.15.0-385.2.1.el8_8 on host 193.189.14.211.",
        // Card-like and identifier-like numbers.
        "Card 4819 5622 4626 1184 was declined; SIREN 477 435 941; SIN 181-840-016.",
        "ISBN 978-1-82719-310-6, amount $4,656445.43, coordinates 65.6702645, -111.600750",
    ] {
        assert!(
            found(&set, text).is_empty(),
            "{text}: {:?}",
            found(&set, text)
        );
    }
}

#[test]
fn shapes_of_other_numbers_need_a_phone_word() {
    let set = phones(None);
    // Nine grouped digits read as a SIREN without a phone word, as a Spanish mobile with one.
    assert!(found(&set, "SIREN 612 345 678").is_empty());
    assert_eq!(found(&set, "mobile: 612 345 678"), ["612 345 678"]);
    // Ten bare digits: a NANP number alone, an Indian mobile only after a phone word.
    assert_eq!(found(&set, "id 4155552671"), ["4155552671"]);
    assert!(found(&set, "id 9876543210").is_empty());
    assert_eq!(found(&set, "Tel. 9876543210"), ["9876543210"]);
}

#[test]
fn regions_decide_which_national_numbers_count() {
    let text = "US (415) 555-2671, DE 030 901820, IN 98765 43210, BR (11) 91234-5678.";
    assert_eq!(
        found(&phones(Some(&["US"])), text),
        ["(415) 555-2671"],
        "US only"
    );
    assert_eq!(found(&phones(Some(&["DE"])), text), ["030 901820"]);
    // `(415) 555-2671` is also a valid number of Curitiba (BR 41 5555-2671): regions
    // widen what counts, they do not tell countries apart.
    let in_br = found(&phones(Some(&["IN", "BR"])), text);
    assert!(in_br.contains(&"98765 43210") && in_br.contains(&"(11) 91234-5678"));
    assert!(!in_br.contains(&"030 901820"), "{in_br:?}");
    assert_eq!(found(&phones(None), text).len(), 4, "the default regions");
    // Without a NANP region, ten bare digits need a phone word like any other number.
    assert!(found(&phones(Some(&["GB"])), "id 4155552671").is_empty());
}

#[test]
fn the_default_regions_are_documented_and_cover_the_examples() {
    assert_eq!(
        DEFAULT_PHONE_REGIONS,
        [
            "US", "CA", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "MX", "IN", "JP", "AU"
        ]
    );
    for (region, _) in NATIONAL {
        assert!(DEFAULT_PHONE_REGIONS.contains(region), "{region}");
    }
}

fn guard(yaml: &str) -> Result<PromptGuardLayer, Error> {
    let config: PromptGuardConfig = serde_saphyr::from_str(yaml).unwrap();
    PromptGuardLayer::from_config(&config)
}

#[test]
fn region_config_errors_name_the_yaml_path() {
    let unknown = "request:\n  - regex:\n      action: Mask\n      builtins: [PHONE_NUMBER]\n      phoneNumber: {regions: [US, GB, XX]}\n";
    let err = guard(unknown).unwrap_err();
    assert_eq!(
        err.to_string(),
        "request[0].regex.phoneNumber.regions[2]: unknown region `XX`: expected an ISO 3166-1 \
         alpha-2 region code of libphonenumber's metadata in upper case, such as US, GB or DE"
    );
    let lower = "request:\n  - regex:\n      action: Mask\n      builtins: [PHONE_NUMBER]\n      phoneNumber: {regions: [us]}\n";
    assert!(
        guard(lower)
            .unwrap_err()
            .to_string()
            .starts_with("request[0].regex.phoneNumber.regions[0]: unknown region `us`")
    );
    let empty = "response:\n  - regex:\n      action: Mask\n      builtins: [PHONE_NUMBER]\n      phoneNumber: {regions: []}\n";
    assert!(
        guard(empty)
            .unwrap_err()
            .to_string()
            .starts_with("response[0].regex.phoneNumber.regions: is empty")
    );
    let without = "request:\n  - regex:\n      action: Mask\n      builtins: [EMAIL]\n      phoneNumber: {regions: [US]}\n";
    assert_eq!(
        guard(without).unwrap_err().to_string(),
        "request[0].regex.phoneNumber: is set but `builtins` has no PHONE_NUMBER"
    );
    let typo = "request:\n  - regex:\n      action: Mask\n      builtins: [PHONE_NUMBER]\n      phoneNumber: {region: [US]}\n";
    assert!(serde_saphyr::from_str::<PromptGuardConfig>(typo).is_err());
}

#[test]
fn region_config_in_yaml_equals_the_builder() {
    let yaml = "request:\n  - regex:\n      action: Mask\n      builtins: [PHONE_NUMBER]\n      phoneNumber:\n        regions: [GB, DE]\n";
    let config: PromptGuardConfig = serde_saphyr::from_str(yaml).unwrap();
    let built = PromptGuardConfig::default().request([agentgw_guard::GuardConfig::default()
        .regex(
            RegexConfig::default()
                .action(agentgw_guard::Action::Mask)
                .builtins([Builtin::PhoneNumber])
                .phone_number(PhoneNumberConfig::default().regions(["GB", "DE"])),
        )]);
    assert_eq!(config, built);
}

/// Serves an echo upstream behind the guard of `yaml` and sends `text` as a chat message.
async fn masked(yaml: &str, text: &str) -> String {
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(|body: Bytes| async move { body }),
        )
        .layer(guard(yaml).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let echoed: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    echoed["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_guard_masks_the_national_numbers_of_its_regions_over_a_socket() {
    let text = "Berlin office 030 901820, London 020 7946 0958, order 8823144013.";
    let gb = "request:\n  - regex:\n      action: Mask\n      builtins: [PHONE_NUMBER]\n      phoneNumber: {regions: [GB]}\n";
    assert_eq!(
        masked(gb, text).await,
        "Berlin office 030 901820, London <PHONE_NUMBER>, order 8823144013."
    );
    let default = "request:\n  - regex:\n      action: Mask\n      builtins: [PHONE_NUMBER]\n";
    assert_eq!(
        masked(default, text).await,
        "Berlin office <PHONE_NUMBER>, London <PHONE_NUMBER>, order 8823144013."
    );
}

/// The default-region set and a GB-only set, built once for the property tests.
fn shared(gb_only: bool) -> &'static PatternSet {
    static DEFAULT: OnceLock<PatternSet> = OnceLock::new();
    static GB: OnceLock<PatternSet> = OnceLock::new();
    if gb_only {
        GB.get_or_init(|| phones(Some(&["GB"])))
    } else {
        DEFAULT.get_or_init(|| phones(None))
    }
}

proptest! {
    /// A valid UK mobile (`07400` range) written nationally in any of its usual groupings, inside any ASCII
    /// text that has no digits, is found exactly.
    #[test]
    fn uk_mobiles_are_found_in_any_text(
        subscriber in 100_000u32..1_000_000,
        grouping in 0usize..3,
        before in "[a-zA-Z ,.:]{0,20}",
        after in "[a-zA-Z ,.:]{0,20}",
    ) {
        let number = match grouping {
            0 => format!("07400 {subscriber}"),
            1 => format!("07400{subscriber}"),
            _ => format!("07400-{subscriber}"),
        };
        let text = format!("{before} {number} {after}");
        prop_assert_eq!(found(shared(true), &text), vec![number.as_str()]);
    }

    /// Unix timestamps (seconds and milliseconds), ZIP+4 codes, ISO dates and order numbers
    /// are never phone numbers, whatever their digits.
    #[test]
    fn timestamps_zip_codes_dates_and_orders_are_never_phone_numbers(
        seconds in 1_000_000_000u64..2_000_000_000,
        millis in 1_000_000_000_000u64..2_000_000_000_000,
        zip in 0u32..100_000,
        plus4 in 0u32..10_000,
        (year, month, day) in (1900u32..2100, 1u32..13, 1u32..29),
        order in 10_000_000u32..100_000_000,
    ) {
        let text = format!(
            "ts={seconds} at {millis}ms, ship to NV {zip:05}-{plus4:04} on {year}-{month:02}-{day:02} \
             or {day:02}-{month:02}-{year}, order #{order} / ORD-{year}-{order}"
        );
        let set = shared(false);
        prop_assert!(found(set, &text).is_empty(), "{}: {:?}", text, found(set, &text));
    }

    /// IPv4 addresses and dotted version numbers are never phone numbers.
    #[test]
    fn ips_and_versions_are_never_phone_numbers(
        ip in proptest::array::uniform4(0u8..=255),
        version in proptest::collection::vec(0u32..100, 2..5),
        build in 0u32..100_000,
    ) {
        let ip = ip.map(|p| p.to_string()).join(".");
        let version = version.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
        let text = format!("host {ip} runs {version}.{build}");
        prop_assert!(found(shared(false), &text).is_empty(), "{}", text);
    }
}
