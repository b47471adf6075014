//! The label set of one series, for `prometheus-client`'s encoders.
//!
//! The text format requires `\`, `"` and line feed in a label value to be
//! written `\\`, `\"` and `\n` (prometheus-client does it since 0.25.2);
//! the test below keeps that true for every label value the node exports.

use std::fmt;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

/// The labels of one series: names (static) and values, in the same order.
pub struct LabelSet<'a, V: AsRef<str>> {
    pub names: &'static [&'static str],
    pub values: &'a [V],
}

impl<V: AsRef<str>> EncodeLabelSet for LabelSet<'_, V> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        for (name, value) in self.names.iter().zip(self.values) {
            (*name, value.as_ref()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::prometheus_text::encode;
    use prometheus_client::registry::Registry;

    use super::super::series::GaugeVec;

    fn exposition(value: &str) -> String {
        let gauges = GaugeVec::gauges(&["site"]);
        gauges.with(&[value]).set(1);
        let mut registry = Registry::default();
        registry.register("t", "test", gauges);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn label_values_are_escaped_as_the_text_format_requires() {
        let cases = [
            (
                "a plain value is written as it is",
                "demo",
                r#"t{site="demo"} 1"#,
            ),
            ("a quote is escaped", r#"we"ird"#, r#"t{site="we\"ird"} 1"#),
            ("a backslash is escaped", r"a\b", r#"t{site="a\\b"} 1"#),
            ("a line feed is escaped", "a\nb", r#"t{site="a\nb"} 1"#),
            ("several in a row", "\"\\\n", r#"t{site="\"\\\n"} 1"#),
            ("other characters pass", "é\tx", "t{site=\"é\tx\"} 1"),
        ];
        for (case, value, line) in cases {
            let text = exposition(value);
            assert!(text.lines().any(|l| l == line), "{case}: {text}");
        }
    }
}
