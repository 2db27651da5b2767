//! What the loom models share: the preemption-bounded runner and an event
//! with drop glue.

/// Runs `f` under loom with at most `max_preemptions` preemptions (fewer if
/// `LOOM_MAX_PREEMPTIONS` says so): models with three threads or more take
/// minutes at two.
pub fn model(max_preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(builder.preemption_bound.map_or(max_preemptions, |env| env.min(max_preemptions)));
    builder.check(f);
}

/// The event the models publish. It has drop glue, so that a bus keeps
/// track of which slots hold an event (as it must for heavy events), and
/// replacing one is a write the model sees.
#[derive(Clone, Debug)]
#[allow(dead_code)] // Not every model publishes it.
pub struct Value(pub u64);

impl Drop for Value {
    fn drop(&mut self) {}
}
