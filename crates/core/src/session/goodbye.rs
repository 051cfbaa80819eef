//! Goodbye phrase matching: the fallback that ends a session when the member says
//! "au revoir" but the model does not call `end_session`.
//!
//! Matching is case- and accent-insensitive and works on whole words, so "Au revoir !"
//! and "bon, au-revoir" match "au revoir" while "revoirs" does not match "revoir".

/// Configured goodbye phrases, normalised once, checked in configuration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoodbyeMatcher {
    /// (phrase as configured, its normalised words)
    phrases: Vec<(String, Vec<String>)>,
}

impl GoodbyeMatcher {
    /// Phrases that normalise to no word at all (punctuation only) are skipped: they would
    /// match every transcript.
    pub fn new<S: AsRef<str>>(phrases: &[S]) -> Self {
        let phrases = phrases
            .iter()
            .map(|p| (p.as_ref().to_owned(), words(p.as_ref())))
            .filter(|(_, w)| !w.is_empty())
            .collect();
        GoodbyeMatcher { phrases }
    }

    /// The first configured phrase whose words appear contiguously in `transcript`.
    pub fn find(&self, transcript: &str) -> Option<&str> {
        let said = words(transcript);
        self.phrases
            .iter()
            .find(|(_, w)| said.windows(w.len()).any(|win| win == w.as_slice()))
            .map(|(p, _)| p.as_str())
    }
}

/// Lower-cased, accent-free words of `text`; everything not a letter or digit separates words.
pub fn words(text: &str) -> Vec<String> {
    let mut folded = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match fold(c) {
            Folded::One(f) => folded.push(f),
            Folded::Two(a, b) => {
                folded.push(a);
                folded.push(b);
            }
            Folded::Drop => {}
            Folded::Keep if c.is_alphanumeric() => folded.push(c),
            Folded::Keep => folded.push(' '),
        }
    }
    folded.split_whitespace().map(str::to_owned).collect()
}

enum Folded {
    One(char),
    Two(char, char),
    /// A combining mark (decomposed accents): dropped.
    Drop,
    Keep,
}

/// Folds the accented Latin letters French, Spanish, German and Portuguese speakers use.
fn fold(c: char) -> Folded {
    let one = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'ī' => 'i',
        'ñ' | 'ń' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' => 'u',
        'ý' | 'ÿ' => 'y',
        'œ' => return Folded::Two('o', 'e'),
        'æ' => return Folded::Two('a', 'e'),
        'ß' => return Folded::Two('s', 's'),
        '\u{0300}'..='\u{036f}' => return Folded::Drop,
        _ => return Folded::Keep,
    };
    Folded::One(one)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn default_matcher() -> GoodbyeMatcher {
        GoodbyeMatcher::new(&crate::session::Settings::default().goodbye_phrases)
    }

    #[test]
    fn words_fold_case_accents_and_punctuation() {
        assert_eq!(words("Au revoir !"), ["au", "revoir"]);
        assert_eq!(words("À BIENTÔT, Jérôme"), ["a", "bientot", "jerome"]);
        assert_eq!(
            words("bon-au revoir...l'équipe"),
            ["bon", "au", "revoir", "l", "equipe"]
        );
        assert_eq!(words("Cœur Straße"), ["coeur", "strasse"]);
        assert_eq!(words("bonne journe\u{0301}e"), ["bonne", "journee"]);
        assert_eq!(words("  \t\n "), Vec::<String>::new());
    }

    #[test]
    fn matches_configured_phrases_table() {
        let m = default_matcher();
        let cases: &[(&str, Option<&str>)] = &[
            ("Au revoir !", Some("au revoir")),
            ("merci, au-revoir JARVIS", Some("au revoir")),
            ("AU REVOIR", Some("au revoir")),
            ("Bonne journée", Some("bonne journée")),
            ("bonne journee à toi", Some("bonne journée")),
            ("À bientôt", Some("à bientôt")),
            ("a bientot", Some("à bientôt")),
            ("au revoirs", None),
            ("aurevoir", None),
            ("je reviens au gymnase", None),
            ("revoir la séance", None),
            ("", None),
            ("bonne", None),
        ];
        for (text, want) in cases {
            assert_eq!(m.find(text), *want, "{text:?}");
        }
    }

    #[test]
    fn earlier_phrase_wins_when_several_match() {
        let m = default_matcher();
        assert_eq!(m.find("bonne journée et au revoir"), Some("au revoir"));
    }

    #[test]
    fn phrases_without_words_are_skipped() {
        let m = GoodbyeMatcher::new(&["!!", "ciao"]);
        assert_eq!(m.find("hello"), None);
        assert_eq!(m.find("ciao!"), Some("ciao"));
        assert_eq!(GoodbyeMatcher::new::<&str>(&[]).find("au revoir"), None);
    }

    proptest! {
        #[test]
        fn phrase_inside_any_sentence_matches(pre in "[a-z ,.!]{0,20}", post in "[a-z ,.!]{0,20}") {
            let m = default_matcher();
            let text = format!("{pre} Au Revoir {post}");
            prop_assert!(m.find(&text).is_some());
        }

        #[test]
        fn words_never_panic_and_are_clean(text in any::<String>()) {
            for w in words(&text) {
                prop_assert!(!w.is_empty());
                prop_assert!(w.chars().all(|c| c.is_alphanumeric()));
            }
        }
    }
}
