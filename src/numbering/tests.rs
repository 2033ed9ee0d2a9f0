use proptest::prelude::*;

use super::*;

fn scheme() -> NumberingScheme {
    NumberingScheme::from_toml(include_str!("../../config/numbering.example.toml")).unwrap()
}

#[test]
fn the_shipped_example_template_loads() {
    let s = scheme();
    assert_eq!(s.agency, "襄阳市生态环境局");
    assert_eq!(s.prefixes(), ["襄环"]);
}

#[test]
fn canonical_numbers_parse() {
    let s = scheme();
    let doc = s.parse_document("襄环罚〔2019〕75号").unwrap();
    assert_eq!(
        doc,
        DocumentNumber {
            agency_code: "襄环".into(),
            kind: "罚".into(),
            year: 2019,
            serial: 75
        }
    );
    let clip = s.parse_clip("襄环罚〔2019〕75号-视-003").unwrap();
    assert_eq!((clip.media, clip.seq), (MediaKind::Video, 3));
    assert_eq!(s.render_clip(&clip), "襄环罚〔2019〕75号-视-003");
}

#[test]
fn the_usual_variants_render_to_one_canonical_form() {
    let s = scheme();
    for variant in [
        "襄环罚[2019]75号-视-003",
        "襄环罚（2019）75号-视-003",
        "襄环罚【2019】75号－视－003",
        "襄环罚［２０１９］７５号-视-３",
        " 襄环 罚 〔2019〕 075 号 - 视 - 0003 ",
        "襄环罚\u{3000}(2019)75号—视—003",
        "襄环罚﹝2019﹞75号-视-003",
    ] {
        let clip = s
            .parse_clip(variant)
            .unwrap_or_else(|e| panic!("{variant}: {e}"));
        assert_eq!(
            s.render_clip(&clip),
            "襄环罚〔2019〕75号-视-003",
            "{variant}"
        );
    }
}

#[test]
fn malformed_numbers_say_where_and_why() {
    let s = scheme();
    let cases = [
        ("襄环罚〔2019〕75", 12, "号"),
        ("襄环罚〔19〕75号", 5, "four digits"),
        ("襄环罚2019〕75号", 1, "〔year〕"),
        ("武环罚〔2019〕75号", 1, "agency code"),
        ("襄环奖〔2019〕75号", 3, "document kind"),
        ("襄环罚〔2019〕0号", 10, "starts at 1"),
        ("襄环罚〔2019〕75号x", 13, "unexpected"),
    ];
    for (input, at, why) in cases {
        let e = s.parse_document(input).unwrap_err();
        assert_eq!(e.at, at, "{input}: {e}");
        assert!(e.why.contains(why), "{input}: {e}");
    }
    let e = s.parse_clip("襄环罚〔2019〕75号-录-003").unwrap_err();
    assert_eq!(e.at, 14);
    assert!(e.why.contains("media kind"), "{e}");
    let e = s.parse_clip("襄环罚〔2019〕75号-视-").unwrap_err();
    assert_eq!(e.at, 16);
}

#[test]
fn provisional_numbers_round_trip_and_refuse_bad_dates() {
    let p = ProvisionalNumber::parse("A123456-20261120-000017").unwrap();
    assert_eq!(p.seq, 17);
    assert_eq!(p.to_string(), "A123456-20261120-000017");
    assert_eq!(
        ProvisionalNumber::parse("A12-34-20261120-17")
            .unwrap()
            .device,
        "A12-34"
    );
    assert_eq!(
        ProvisionalNumber::parse("A123456-２０２６１１２０-17")
            .unwrap()
            .to_string(),
        "A123456-20261120-000017"
    );
    let e = ProvisionalNumber::parse("A123456-20261320-1").unwrap_err();
    assert_eq!(e.at, 9);
    assert!(ProvisionalNumber::parse("A/123-20261120-1").is_err());
    assert!(ProvisionalNumber::parse("A123-20261120-0").is_err());
}

#[test]
fn bad_templates_are_refused_with_the_key_named() {
    let good = include_str!("../../config/numbering.example.toml");
    let e = NumberingScheme::from_toml(&good.replace("seq-width", "seq_width")).unwrap_err();
    assert!(e.contains("seq_width"), "{e}");
    assert!(NumberingScheme::from_toml(&good.replace("audio = \"音\"", "audio = \"视\"")).is_err());
    assert!(
        NumberingScheme::from_toml(&good.replace("prefixes = [\"襄环\"]", "prefixes = []"))
            .is_err()
    );
    let e = NumberingScheme::from_toml(&good.replace("\"检\" = ", "\"验\" = ")).unwrap_err();
    assert!(e.contains("act-types") && e.contains("验"), "{e}");
}

#[test]
fn the_template_names_each_kind_s_act_type_for_the_statistics() {
    let s = scheme();
    assert_eq!(s.act_type("罚"), Some("行政处罚"));
    assert_eq!(s.act_type("查封"), Some("行政强制"));
    assert_eq!(s.act_type("未知"), None);
}

fn any_clip() -> impl Strategy<Value = ClipNumber> {
    let s = scheme();
    (
        prop::sample::select(s.prefixes().to_vec()),
        prop::sample::select(s.kinds().to_vec()),
        MIN_YEAR..=MAX_YEAR,
        1u32..1_000_000,
        prop::sample::select(vec![MediaKind::Video, MediaKind::Audio, MediaKind::Photo]),
        1u32..100_000,
    )
        .prop_map(|(agency_code, kind, year, serial, media, seq)| ClipNumber {
            document: DocumentNumber {
                agency_code,
                kind,
                year,
                serial,
            },
            media,
            seq,
        })
}

/// Rewrites canonical text into an accepted variant, chosen by `style`.
fn variant(canonical: &str, style: u8) -> String {
    let (open, close) = [
        ('〔', '〕'),
        ('[', ']'),
        ('（', '）'),
        ('【', '】'),
        ('［', '］'),
    ][usize::from(style % 5)];
    canonical
        .chars()
        .flat_map(|c| {
            let c = match c {
                '〔' => open,
                '〕' => close,
                '0'..='9' if style & 8 != 0 => {
                    char::from_u32('０' as u32 + (c as u32 - '0' as u32)).unwrap()
                }
                '-' if style & 16 != 0 => '－',
                c => c,
            };
            if style & 32 != 0 {
                vec![c, ' ']
            } else {
                vec![c]
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn parse_of_render_is_the_identity(clip in any_clip()) {
        let s = scheme();
        prop_assert_eq!(&s.parse_clip(&s.render_clip(&clip)).unwrap(), &clip);
        prop_assert_eq!(&s.parse_document(&clip.document.to_string()).unwrap(), &clip.document);
    }

    #[test]
    fn every_variant_renders_canonically(clip in any_clip(), style in any::<u8>()) {
        let s = scheme();
        let canonical = s.render_clip(&clip);
        let parsed = s.parse_clip(&variant(&canonical, style)).unwrap();
        prop_assert_eq!(s.render_clip(&parsed), canonical);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,40}") {
        let s = scheme();
        let _ = s.parse_clip(&text);
        let _ = ProvisionalNumber::parse(&text);
    }

    #[test]
    fn provisional_parse_of_render_is_the_identity(
        device in "[A-Za-z0-9_][A-Za-z0-9_-]{0,15}", days in 0i64..40_000, seq in 1u64..10_000_000,
    ) {
        let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days);
        let p = ProvisionalNumber { device, date, seq };
        prop_assert_eq!(ProvisionalNumber::parse(&p.to_string()).unwrap(), p);
    }
}
