use super::*;

/// Checks that `svg` is well-formed enough for a browser: tags balance, one `<svg>` root,
/// attribute quotes pair up, no raw `&` outside entities. Returns the text content.
fn check_xml(svg: &str) -> String {
    let mut stack: Vec<&str> = Vec::new();
    let mut text = String::new();
    let mut roots = 0;
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let close = open + rest[open..].find('>').expect("unterminated tag");
        let tag = &rest[open + 1..close];
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        assert!(!tag.contains('<'), "'<' inside <{tag}>");
        if let Some(n) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(n.trim()), "mismatched </{n}>");
        } else {
            let n = tag
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap();
            if stack.is_empty() {
                roots += 1;
                assert_eq!(n, "svg");
            }
            if !tag.ends_with('/') {
                stack.push(n);
            }
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    assert_eq!(roots, 1);
    assert!(rest.trim().is_empty());
    for (i, _) in svg.match_indices('&') {
        let ent = &svg[i..svg[i..].find(';').map_or(svg.len(), |e| i + e + 1)];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&ent),
            "raw & at {ent:.10}"
        );
    }
    text
}

fn assert_finite(svg: &str) {
    for bad in ["NaN", "inf", "Infinity"] {
        assert!(!svg.contains(bad), "{bad} in output");
    }
}

#[test]
fn line_chart_is_well_formed_with_every_series_and_escaped_text() {
    let series = vec![
        (
            "batch <1> & \"fp32\"".to_string(),
            vec![(1.0, 10.0), (2.0, 20.0), (3.0, f64::NAN), (4.0, 35.0)],
        ),
        (
            "resnet50".to_string(),
            vec![(1.0, 5.0), (f64::INFINITY, 3.0), (4.0, 97.0)],
        ),
        ("empty".to_string(), vec![]),
    ];
    let svg = line_chart("ms <per> batch", "batch", "ms", false, &series);
    let text = check_xml(&svg);
    assert_finite(&svg);
    assert!(svg.contains("batch &lt;1&gt; &amp; &quot;fp32&quot;"));
    assert!(svg.contains("resnet50") && svg.contains("empty"));
    assert!(svg.contains("ms &lt;per&gt; batch"));
    // y 5..97 on a linear axis: ticks every 20 from 0 to 100.
    for t in ["0", "20", "40", "60", "80", "100"] {
        assert!(
            text.contains(&format!("\n{t}")) || text.contains(t),
            "tick {t}"
        );
    }
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert_eq!(svg.matches("<circle").count(), 5);
}

#[test]
fn log_axis_gets_decade_ticks_and_skips_non_positive_values() {
    let pts = vec![(0.0, 1e-3), (1.0, 0.0), (2.0, -5.0), (3.0, 1e3), (4.0, 2.5)];
    let svg = line_chart("t", "x", "y", true, &[("s".into(), pts)]);
    check_xml(&svg);
    assert_finite(&svg);
    assert_eq!(svg.matches("<circle").count(), 3);
    let ya = Axis::fit([1e-3, 2.5, 1e3].into_iter(), true, false);
    let labels: Vec<String> = ya.ticks().into_iter().map(|t| t.1).collect();
    assert_eq!(labels, ["0.001", "0.01", "0.1", "1", "10", "100", "1000"]);
    for l in &labels {
        assert!(svg.contains(&format!(">{l}</text>")), "{l}");
    }
    // Many decades: every other one is labelled, still on whole decades.
    let wide = Axis::fit([1e-9, 1e9].into_iter(), true, false);
    let labels: Vec<String> = wide.ticks().into_iter().map(|t| t.1).collect();
    assert_eq!(labels, ["1e-9", "1e-6", "0.001", "1", "1000", "1e6", "1e9"]);
}

#[test]
fn linear_ticks_are_nice_numbers() {
    let t = |v: &[f64], zero| -> Vec<String> {
        Axis::fit(v.iter().copied(), false, zero)
            .ticks()
            .into_iter()
            .map(|t| t.1)
            .collect()
    };
    assert_eq!(
        t(&[0.13, 0.91], false),
        ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    );
    assert_eq!(t(&[1234.0, 5678.0], true), ["0", "2000", "4000", "6000"]);
    assert_eq!(
        t(&[-3.0, 7.0], false),
        ["-4", "-2", "0", "2", "4", "6", "8"]
    );
    assert_eq!(t(&[5.0], true), ["0", "1", "2", "3", "4", "5"]);
    assert_eq!(t(&[0.0], true), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
    assert_eq!(t(&[], false), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
    assert_eq!(nice_step(0.3), 0.5);
    assert_eq!(nice_step(7.0), 10.0);
    assert_eq!(nice_step(20.0), 20.0);
}

#[test]
fn bar_chart_groups_series_keeps_colours_and_skips_bad_values() {
    let groups = vec![
        (
            "alexnet".to_string(),
            vec![
                ("batch 1".to_string(), 900.0),
                ("batch 8".to_string(), 4200.0),
            ],
        ),
        (
            "vgg19".to_string(),
            vec![
                ("batch 8".to_string(), 0.0),
                ("batch 32".to_string(), f64::NAN),
            ],
        ),
    ];
    for log in [false, true] {
        let svg = bar_chart("images/s", "images/s", log, &groups);
        check_xml(&svg);
        assert_finite(&svg);
        for name in ["alexnet", "vgg19", "batch 1", "batch 8", "batch 32"] {
            assert!(svg.contains(name), "{name}");
        }
        // NaN always skipped; 0 skipped on the log axis only.
        assert_eq!(svg.matches("<title>").count(), if log { 2 } else { 3 });
        // "batch 8" has the second palette colour in both groups.
        let bars: Vec<&str> = svg
            .lines()
            .filter(|l| l.contains("<title>batch 8"))
            .collect();
        assert!(bars.iter().all(|l| l.contains(PALETTE[1])), "{bars:?}");
    }
    let ya = Axis::fit([100.0, 4200.0].into_iter(), true, true);
    assert_eq!(
        (ya.lo, ya.hi),
        (1.0, 4.0),
        "a bar of 100 keeps a visible height"
    );
    let svg = bar_chart("nothing", "y", true, &[]);
    check_xml(&svg);
    assert_finite(&svg);
}

#[test]
fn category_labels_shrink_then_turn_when_they_do_not_fit() {
    let attrs = |slot| category_label_attrs(["vgg19", "densenet121_small"].into_iter(), slot);
    assert!(attrs(400.0).contains(r#"font-size="12.0""#));
    assert!(
        attrs(90.0).contains(r#"text-anchor="middle" font-size="8.4""#),
        "{}",
        attrs(90.0)
    );
    assert!(attrs(40.0).contains("rotate(-30 CX)"));
    let many: Vec<(String, Vec<(String, f64)>)> = (0..40)
        .map(|i| {
            (
                format!("a_long_model_name_{i}"),
                vec![("s".to_string(), 1.0)],
            )
        })
        .collect();
    let svg = bar_chart("t", "y", false, &many);
    check_xml(&svg);
    assert!(svg.contains("rotate(-30 ") && !svg.contains("CX"));
}

#[test]
fn labels_and_values_format_cleanly() {
    assert_eq!(linear_label(-0.0, 0.5), "0.0");
    assert_eq!(linear_label(2.5e7, 5e6), "2.5e7");
    assert_eq!(decade_label(-2), "0.01");
    assert_eq!(decade_label(7), "1e7");
    assert_eq!(fmt_value(1234.5678), "1235");
    assert_eq!(fmt_value(0.012346), "0.01235");
    assert_eq!(esc("a\tb<"), "a b&lt;");
}
