//! The two event types scenarios publish: a small `Copy` struct and a heavy
//! owned order event with strings and a `Vec`.
//!
//! Both carry the producer, a per-producer sequence number and a timestamp
//! slot, so that delivery can be verified (count and checksum per subscriber,
//! order per producer) and latency measured from the intended send time.

use crate::{Event, Topic};

/// Fields every payload carries for verification and latency measurement.
pub trait Payload: Event {
    /// How many shapes (string lengths, item counts) [`Payload::make`]
    /// builds: the event for `seq` has shape `seq % SHAPES`. A producer
    /// that prepares one template per shape before its timed loop and
    /// cycles through them publishes events whose sizes change from one
    /// event to the next, as real traffic does; 1 for a fixed-size payload.
    const SHAPES: u64 = 1;
    /// Builds an event for `producer`'s `seq`-th publish on `topic`.
    fn make(producer: u32, seq: u64, topic: Topic) -> Self;
    /// The producer that published it.
    fn producer(&self) -> u32;
    /// Its per-producer sequence number.
    fn seq(&self) -> u64;
    /// The intended send time (nanoseconds since a run-chosen epoch; 0 when
    /// not measuring latency).
    fn stamp(&self) -> u64;
    /// Sets the intended send time.
    fn set_stamp(&mut self, stamp: u64);
    /// Sets the sequence number (for reusing one template event).
    fn set_seq(&mut self, seq: u64);
    /// A cheap digest of the event's content (not its stamp), summed by
    /// listeners and producers to verify that what arrived is what was sent.
    /// Its cost is bounded: it reads a fixed number of bytes per field.
    fn checksum(&self) -> u64;
}

/// The accessors of the header fields (`producer`, `seq`, `stamp`) both
/// payloads carry under the same names.
macro_rules! header_accessors {
    () => {
        #[inline]
        fn producer(&self) -> u32 {
            self.producer
        }
        #[inline]
        fn seq(&self) -> u64 {
            self.seq
        }
        #[inline]
        fn stamp(&self) -> u64 {
            self.stamp
        }
        #[inline]
        fn set_stamp(&mut self, stamp: u64) {
            self.stamp = stamp;
        }
    };
}

/// A small event: four words, `Copy`, no heap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmallEvent {
    /// Publishing producer.
    pub producer: u32,
    /// Topic.
    pub topic: Topic,
    /// Per-producer sequence number.
    pub seq: u64,
    /// Intended send time (ns).
    pub stamp: u64,
    /// An opaque value listeners may read.
    pub value: u64,
}

impl Event for SmallEvent {
    #[inline]
    fn topic(&self) -> Topic {
        self.topic
    }
}

impl Payload for SmallEvent {
    fn make(producer: u32, seq: u64, topic: Topic) -> Self {
        SmallEvent { producer, topic, seq, stamp: 0, value: seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) }
    }
    header_accessors!();
    #[inline]
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
        self.value = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    #[inline]
    fn checksum(&self) -> u64 {
        self.value ^ u64::from(self.topic) ^ (u64::from(self.producer) << 48)
    }
}

/// One line of a [`HeavyEvent`] order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LineItem {
    /// Stock-keeping unit.
    pub sku: String,
    /// Quantity ordered.
    pub quantity: u32,
    /// Unit price in cents.
    pub price_cents: u64,
}

impl Clone for LineItem {
    fn clone(&self) -> Self {
        LineItem { sku: self.sku.clone(), quantity: self.quantity, price_cents: self.price_cents }
    }

    // Reuses `sku`'s buffer: the pooled and ring buses copy into preallocated
    // slots with `clone_from` and must not allocate.
    fn clone_from(&mut self, source: &Self) {
        self.sku.clone_from(&source.sku);
        self.quantity = source.quantity;
        self.price_cents = source.price_cents;
    }
}

/// A heavy event shaped like an e-commerce order: owned strings and a `Vec`
/// of line items (several heap blocks per event), in five shapes
/// ([`Payload::SHAPES`]) of 1 to 5 items, whose strings grow with the item
/// count.
#[derive(Debug, Default, Eq)]
pub struct HeavyEvent {
    /// Publishing producer.
    pub producer: u32,
    /// Topic.
    pub topic: Topic,
    /// Per-producer sequence number.
    pub seq: u64,
    /// Intended send time (ns).
    pub stamp: u64,
    /// Order identifier.
    pub order_id: String,
    /// Customer identifier.
    pub customer: String,
    /// ISO currency code.
    pub currency: String,
    /// Ordered items.
    pub items: Vec<LineItem>,
    /// Line items a `clone_from` took off `items` (the source had fewer),
    /// kept with their buffers for a later `clone_from` that needs more:
    /// so a slot reused for events of different item counts stops
    /// allocating once it has held the largest. Not part of the event's
    /// value (`==` and [`Payload::checksum`] ignore it; `clone` leaves it
    /// empty).
    spare: Vec<LineItem>,
}

impl PartialEq for HeavyEvent {
    fn eq(&self, other: &Self) -> bool {
        self.producer == other.producer
            && self.topic == other.topic
            && self.seq == other.seq
            && self.stamp == other.stamp
            && self.order_id == other.order_id
            && self.customer == other.customer
            && self.currency == other.currency
            && self.items == other.items
    }
}

impl Clone for HeavyEvent {
    fn clone(&self) -> Self {
        HeavyEvent {
            producer: self.producer,
            topic: self.topic,
            seq: self.seq,
            stamp: self.stamp,
            order_id: self.order_id.clone(),
            customer: self.customer.clone(),
            currency: self.currency.clone(),
            items: self.items.clone(),
            spare: Vec::new(),
        }
    }

    // Field by field, so that every buffer of `self` is reused: `derive`
    // would fall back to `*self = source.clone()`, which allocates. Surplus
    // line items go to `spare` and come back from it, where
    // `Vec::clone_from` would drop them and allocate new ones.
    fn clone_from(&mut self, source: &Self) {
        self.producer = source.producer;
        self.topic = source.topic;
        self.seq = source.seq;
        self.stamp = source.stamp;
        self.order_id.clone_from(&source.order_id);
        self.customer.clone_from(&source.customer);
        self.currency.clone_from(&source.currency);
        while self.items.len() > source.items.len() {
            self.spare.push(self.items.pop().expect("longer than the source"));
        }
        for (mine, theirs) in self.items.iter_mut().zip(&source.items) {
            mine.clone_from(theirs);
        }
        for theirs in &source.items[self.items.len()..] {
            let item = match self.spare.pop() {
                Some(mut item) => {
                    item.clone_from(theirs);
                    item
                }
                None => theirs.clone(),
            };
            self.items.push(item);
        }
    }
}

impl Event for HeavyEvent {
    #[inline]
    fn topic(&self) -> Topic {
        self.topic
    }
}

/// Item counts of the heavy shapes, in the order producers cycle through
/// them: consecutive events grow and shrink.
const HEAVY_ITEMS: [u64; 5] = [3, 1, 5, 2, 4];

/// Currency codes, one per shape.
const CURRENCIES: [&str; 5] = ["EUR", "USD", "JPY", "GBP", "CHF"];

/// A digest of a string read in constant time: its length and its first
/// and last bytes.
#[inline]
fn text_digest(s: &str) -> u64 {
    let bytes = s.as_bytes();
    let (first, last) = (bytes.first().copied().unwrap_or(0), bytes.last().copied().unwrap_or(0));
    (bytes.len() as u64) | u64::from(first) << 32 | u64::from(last) << 40
}

/// Folds one field's digest into a running checksum (order-sensitive, so a
/// value moved to another field does not cancel out).
#[inline]
fn fold(acc: u64, field: u64) -> u64 {
    (acc ^ field).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(17)
}

impl Payload for HeavyEvent {
    const SHAPES: u64 = HEAVY_ITEMS.len() as u64;

    fn make(producer: u32, seq: u64, topic: Topic) -> Self {
        let shape = (seq % Self::SHAPES) as usize;
        let n = HEAVY_ITEMS[shape] as usize;
        let items = (0..n as u64)
            .map(|i| LineItem {
                sku: format!("SKU-{:0width$}-{i}", seq % 1_000_000, width = 2 + n),
                quantity: 1 + (i as u32),
                price_cents: 199 + 100 * i,
            })
            .collect();
        HeavyEvent {
            producer,
            topic,
            seq,
            stamp: 0,
            order_id: format!("order-{producer:04}-{seq:0width$}", width = 6 + 3 * n),
            customer: format!("customer-{:0width$}", seq.wrapping_mul(2_654_435_761) % 100_000_000, width = 2 + 2 * n),
            currency: CURRENCIES[shape].to_owned(),
            items,
            spare: Vec::new(),
        }
    }
    header_accessors!();
    #[inline]
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }
    #[inline]
    fn checksum(&self) -> u64 {
        let mut acc = fold(0, self.items.len() as u64);
        for item in &self.items {
            acc = fold(acc, item.price_cents ^ u64::from(item.quantity) << 48);
            acc = fold(acc, text_digest(&item.sku));
        }
        acc = fold(acc, text_digest(&self.order_id));
        acc = fold(acc, text_digest(&self.customer));
        acc = fold(acc, text_digest(&self.currency));
        acc ^ self.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(self.topic) ^ (u64::from(self.producer) << 48)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_clone_from_keeps_buffers() {
        // The slot has the larger shape: its buffers fit the source's.
        let source = HeavyEvent::make(1, 8, 0);
        let mut slot = HeavyEvent::make(2, 7, 0);
        assert!(slot.order_id.len() >= source.order_id.len());
        let before = slot.order_id.as_ptr();
        slot.clone_from(&source);
        assert_eq!(slot, source);
        assert_eq!(slot.order_id.as_ptr(), before, "clone_from must reuse the buffer");
    }

    #[test]
    fn heavy_shapes_differ_in_item_count_and_string_lengths() {
        let shapes: Vec<_> = (0..HeavyEvent::SHAPES).map(|seq| HeavyEvent::make(0, seq, 0)).collect();
        for (a, b) in shapes.iter().zip(shapes.iter().skip(1)) {
            assert_ne!(a.items.len(), b.items.len(), "consecutive shapes differ in item count");
            assert_ne!(a.order_id.len(), b.order_id.len(), "and in string length");
            assert_ne!(a.items[0].sku.len(), b.items[0].sku.len(), "and in item size");
        }
        assert_eq!(HeavyEvent::make(3, 12, 1), HeavyEvent::make(3, 12, 1), "make is deterministic");
    }

    #[test]
    fn heavy_clone_from_keeps_surplus_items_for_later() {
        let (big, small) = (HeavyEvent::make(0, 2, 0), HeavyEvent::make(0, 1, 0));
        assert!(big.items.len() > small.items.len());
        let mut slot = big.clone();
        let skus: Vec<_> = slot.items.iter().map(|i| i.sku.as_ptr()).collect();
        slot.clone_from(&small);
        assert_eq!(slot, small, "equal whatever it keeps aside");
        slot.clone_from(&big);
        assert_eq!(slot, big);
        let mut again: Vec<_> = slot.items.iter().map(|i| i.sku.as_ptr()).collect();
        let mut want = skus;
        again.sort();
        want.sort();
        assert_eq!(again, want, "the same item buffers came back");
    }

    #[test]
    fn the_heavy_checksum_sees_content_not_only_lengths() {
        let event = HeavyEvent::make(1, 4, 0);
        let mut changed = event.clone();
        // Same lengths, another last byte.
        changed.order_id.pop();
        changed.order_id.push('x');
        assert_ne!(event.checksum(), changed.checksum(), "a changed last byte");
        let mut changed = event.clone();
        changed.items[0].sku.replace_range(0..1, "X");
        assert_ne!(event.checksum(), changed.checksum(), "a changed first byte of an item");
        let mut swapped = event.clone();
        std::mem::swap(&mut swapped.order_id, &mut swapped.customer);
        assert_ne!(event.checksum(), swapped.checksum(), "fields swapped");
        let mut changed = event.clone();
        changed.set_stamp(99);
        assert_eq!(event.checksum(), changed.checksum(), "the stamp is not content");
    }
}
