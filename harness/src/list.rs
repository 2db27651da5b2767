//! `buslab list`: every bus with its capabilities and guarantees, as text.

use buslab_impls::BusInfo;
use std::io::{self, Write};

/// Writes one block per bus, wrapping prose to `width` columns.
pub(crate) fn write_text(out: &mut impl Write, buses: &[BusInfo], width: usize) -> io::Result<()> {
    for (i, bus) in buses.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let c = &bus.capabilities;
        let kind = if c.peer { "peer crate" } else { "strategy" };
        writeln!(out, "{} ({kind})", bus.name)?;
        wrap(out, "  ", &bus.summary, width)?;
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let max = c.max_subscribers.map_or_else(|| "unlimited".to_owned(), |m| m.to_string());
        let caps = format!(
            " multi-producer {}, async {}, lossy {}, bounded {}, dynamic subscribe {}, native topics {}, max subscribers {max}, listener panics {:?}, zero-alloc small {}, zero-alloc heavy {}",
            yes_no(c.multi_producer),
            yes_no(c.asynchronous),
            yes_no(c.lossy),
            yes_no(c.bounded),
            yes_no(c.dynamic_subscribe),
            yes_no(c.native_topics),
            c.panics,
            yes_no(c.zero_alloc_small),
            yes_no(c.zero_alloc_heavy),
        );
        wrap(out, "  capabilities: ", &caps, width)?;
        let g = &bus.guarantees;
        for (label, text) in [
            ("ordering", &g.ordering),
            ("delivery", &g.delivery),
            ("backpressure", &g.backpressure),
            ("allocations", &g.allocations),
            ("threads", &g.threads),
            ("based on", &g.based_on),
        ] {
            wrap(out, &format!("  {label}: "), text, width)?;
        }
    }
    Ok(())
}

/// Writes `text` after `head`, wrapped at word boundaries, continuation lines
/// indented by four spaces.
fn wrap(out: &mut impl Write, head: &str, text: &str, width: usize) -> io::Result<()> {
    let mut line = head.to_owned();
    let mut has_words = false;
    for word in text.split_whitespace() {
        if has_words && line.chars().count() + 1 + word.chars().count() > width {
            writeln!(out, "{line}")?;
            line = "    ".to_owned();
            has_words = false;
        }
        if has_words {
            line.push(' ');
        }
        line.push_str(word);
        has_words = true;
    }
    writeln!(out, "{line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_word_boundaries() {
        let mut out = Vec::new();
        wrap(&mut out, "  x: ", "aaa bbb ccc ddd", 12).expect("writing to a Vec");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text, "  x: aaa bbb\n    ccc ddd\n");
    }

    #[test]
    fn lists_every_bus() {
        let buses = buslab_impls::all();
        let mut out = Vec::new();
        write_text(&mut out, &buses, 80).expect("writing to a Vec");
        let text = String::from_utf8(out).expect("utf-8");
        for bus in &buses {
            assert!(text.contains(&format!("{} (", bus.name)), "missing {}", bus.name);
        }
    }
}
