//! The prompt-injection classifier's scoring cost per KiB of text, against the regex guard on
//! the same text.
//!
//! - `classifier/score/*`: [`Model::score`] of the built-in model (normalization, feature
//!   hashing, windowed scoring) on 1 KiB and 64 KiB of chat text, ASCII and mixed-script.
//! - `classifier/regex_reject_seed/*`: the seed's four `Reject` patterns on the normalized
//!   text, as one `PatternSet` (what a keyword guard costs), on the same texts.
//!
//! Run with `cargo bench -p agentgw-guard --features classifier --bench classifier`.

use std::hint::black_box;

use agentgw_guard::PatternSet;
use agentgw_guard::classifier::{Model, builtin};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PROSE: &[&str] = &[
    "Can you review the deployment plan below and point out anything that could cause downtime? ",
    "The service runs three replicas behind the load balancer, and the database migration adds a nullable column. ",
    "We roll out with maxUnavailable set to one, so at most a single pod is drained at a time. ",
    "I would check the readiness probe first: a probe that passes before the cache is warm sends traffic to a cold pod. ",
    "Call the on-call engineer if the error rate stays above 2% for 10 minutes, and ignore alerts from the staging cluster. ",
    "{\"user\": {\"id\": 4412, \"name\": \"Ana\", \"zip\": \"14589-3340\"}, \"ok\": true}\n",
];

const MIXED: &[&str] = &[
    "Bitte fasse den folgenden Bericht zusammen und nenne die drei wichtigsten Risiken. ",
    "Le déploiement se fait en trois étapes ; la migration ajoute une colonne facultative. ",
    "请总结以下报告，并列出三个最重要的风险。",
    "Пожалуйста, проверь план развертывания и укажи возможные простои. ",
    "Ünïcödé and emoji 🚀 appear in real traffic too, along with \"quoted\" words. ",
];

fn text(parts: &[&str], bytes: usize) -> String {
    let mut out = String::new();
    for part in parts.iter().cycle() {
        if out.len() + part.len() > bytes {
            break;
        }
        out.push_str(part);
    }
    out
}

fn bench(c: &mut Criterion) {
    let model: &Model = builtin();
    let reject = PatternSet::builder()
        .pattern("prompt-injection-1", "ignore.*previous.*instructions")
        .pattern("prompt-injection-2", "you.*are.*now")
        .pattern("prompt-injection-3", "(?i)forget.*everything")
        .pattern("sensitive-request", "(?i)(password|api.?key|secret|token)")
        .normalize(true)
        .build()
        .expect("seed patterns compile");

    let texts = [
        ("ascii_1KiB", text(PROSE, 1024)),
        ("ascii_64KiB", text(PROSE, 64 << 10)),
        ("mixed_script_1KiB", text(MIXED, 1024)),
    ];
    let mut group = c.benchmark_group("classifier");
    for (name, text) in &texts {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("score/{name}"), |b| {
            b.iter(|| black_box(model.score(black_box(text))));
        });
        group.bench_function(format!("regex_reject_seed/{name}"), |b| {
            b.iter(|| black_box(reject.is_match(black_box(text))));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
