//! Publish cost against subscriber count for every bus (placeholder until the bench lands).
fn main() {}
