//! The two event types scenarios publish: a small `Copy` struct and a heavy
//! owned order event with strings and a `Vec`.
//!
//! Both carry the producer, a per-producer sequence number and a timestamp
//! slot, so that delivery can be verified (count and checksum per subscriber,
//! order per producer) and latency measured from the intended send time.

use crate::{Event, Topic};

/// Fields every payload carries for verification and latency measurement.
pub trait Payload: Event {
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
/// of line items (several heap blocks per event).
#[derive(Debug, Default, PartialEq, Eq)]
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
        }
    }

    // Field by field, so that every buffer of `self` is reused: `derive`
    // would fall back to `*self = source.clone()`, which allocates.
    fn clone_from(&mut self, source: &Self) {
        self.producer = source.producer;
        self.topic = source.topic;
        self.seq = source.seq;
        self.stamp = source.stamp;
        self.order_id.clone_from(&source.order_id);
        self.customer.clone_from(&source.customer);
        self.currency.clone_from(&source.currency);
        self.items.clone_from(&source.items);
    }
}

impl Event for HeavyEvent {
    #[inline]
    fn topic(&self) -> Topic {
        self.topic
    }
}

impl Payload for HeavyEvent {
    fn make(producer: u32, seq: u64, topic: Topic) -> Self {
        let items = (0..3 + seq % 3)
            .map(|i| LineItem {
                sku: format!("SKU-{:06}-{i}", seq % 1_000_000),
                quantity: 1 + (i as u32),
                price_cents: 199 + 100 * i,
            })
            .collect();
        HeavyEvent {
            producer,
            topic,
            seq,
            stamp: 0,
            order_id: format!("order-{producer:04}-{seq:012}"),
            customer: format!("customer-{:08}", seq.wrapping_mul(2_654_435_761) % 100_000_000),
            currency: "EUR".to_owned(),
            items,
        }
    }
    header_accessors!();
    #[inline]
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }
    #[inline]
    fn checksum(&self) -> u64 {
        let items = self.items.iter().fold(0u64, |acc, i| {
            acc.wrapping_add(i.price_cents).wrapping_add(u64::from(i.quantity)).wrapping_add(i.sku.len() as u64)
        });
        self.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ items
            ^ ((self.order_id.len() + self.customer.len() + self.currency.len()) as u64) << 32
            ^ u64::from(self.topic)
            ^ (u64::from(self.producer) << 48)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_clone_from_keeps_buffers() {
        let source = HeavyEvent::make(1, 7, 0);
        let mut slot = HeavyEvent::make(2, 8, 0);
        let before = slot.order_id.as_ptr();
        slot.clone_from(&source);
        assert_eq!(slot, source);
        assert_eq!(slot.order_id.as_ptr(), before, "clone_from must reuse the buffer");
    }
}
