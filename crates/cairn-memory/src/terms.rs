//! The words of a query worth looking up in the full-text index.
//!
//! Function words ("the", "on", "is", "what") match almost every fact and
//! carry no meaning, yet each match adds to BM25: a question that shares only
//! "on" with a fact made that fact a full-text hit. They are dropped before
//! the query reaches the index. Lists exist for English, French, German,
//! Spanish, Italian and Dutch; the query's language is the one whose list
//! it uses most (English on a tie), so a word that is a function word in one
//! language and a content word in another ("son", "die", "been") is only
//! dropped in its own language.

use cairn_store::{index_terms, index_words};

/// Words kept from one query: more would only slow the index down.
const MAX_TERMS: usize = 64;

const ENGLISH: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "either",
    "else",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "let",
    "ll",
    "me",
    "might",
    "more",
    "most",
    "must",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "re",
    "s",
    "same",
    "shall",
    "she",
    "should",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "us",
    "ve",
    "very",
    "was",
    "we",
    "were",
    "what",
    "whats",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

const FRENCH: &[&str] = &[
    "au", "aux", "avec", "ce", "ces", "comment", "dans", "de", "des", "du", "elle", "en", "est",
    "et", "il", "je", "la", "le", "les", "leur", "lui", "ma", "mais", "me", "mes", "moi", "mon",
    "ne", "nos", "notre", "nous", "on", "ou", "où", "par", "pas", "pour", "quand", "que", "quel",
    "quelle", "qui", "sa", "se", "ses", "son", "sont", "sur", "ta", "te", "tes", "toi", "ton",
    "tu", "un", "une", "vos", "votre", "vous",
];

const GERMAN: &[&str] = &[
    "als", "am", "an", "auch", "auf", "aus", "bei", "bin", "bist", "das", "dass", "dem", "den",
    "der", "des", "die", "du", "ein", "eine", "einem", "einen", "einer", "er", "es", "für", "hat",
    "ich", "ihr", "im", "in", "ist", "ja", "mein", "meine", "mich", "mir", "mit", "nicht", "noch",
    "sie", "sind", "und", "uns", "unser", "von", "vor", "wann", "war", "was", "welche", "wer",
    "wie", "wir", "wo", "zu", "zum", "zur",
];

const SPANISH: &[&str] = &[
    "al", "como", "con", "cuál", "cuándo", "de", "del", "dónde", "el", "ella", "en", "es", "está",
    "la", "las", "lo", "los", "me", "mi", "mis", "nos", "para", "pero", "por", "qué", "quién",
    "se", "su", "sus", "te", "tu", "tus", "un", "una", "y", "yo",
];

const ITALIAN: &[&str] = &[
    "al", "alla", "che", "chi", "come", "con", "da", "dei", "del", "della", "di", "dove", "è",
    "gli", "il", "in", "io", "la", "le", "lo", "ma", "mi", "mia", "mio", "nel", "per", "qual",
    "quale", "quando", "si", "sono", "su", "ti", "tu", "un", "una", "uno",
];

const DUTCH: &[&str] = &[
    "aan", "al", "bij", "dat", "de", "den", "die", "dit", "een", "en", "het", "hij", "hoe", "ik",
    "in", "is", "je", "jij", "maar", "me", "met", "mijn", "niet", "of", "om", "onze", "op", "te",
    "van", "voor", "waar", "wanneer", "wat", "we", "welke", "wie", "wij", "zijn",
];

/// The languages with a list, English first (it wins ties).
const LISTS: [&[&str]; 6] = [ENGLISH, FRENCH, GERMAN, SPANISH, ITALIAN, DUTCH];

/// The terms of `query` to look up: its words without the function words
/// of its language, as the index holds them (stemmed, `index_terms`),
/// each once. A query made only of function words keeps none.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    query_words(query)
        .iter()
        .flat_map(|w| index_terms(w))
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// The distinct words of `query` without the function words of its
/// language (before stemming: the lists hold words).
fn query_words(query: &str) -> Vec<String> {
    let all = index_words(query);
    let hits = |list: &[&str]| all.iter().filter(|w| list.contains(&w.as_str())).count();
    // English wins ties: another list must explain strictly more words.
    let mut list = ENGLISH;
    for other in &LISTS[1..] {
        if hits(other) > hits(list) {
            list = other;
        }
    }
    all.into_iter()
        .filter(|w| !list.contains(&w.as_str()))
        // A lone letter (the "s" of "user's") says nothing; a lone digit may.
        .filter(|w| w.chars().count() > 1 || w.chars().all(|c| c.is_ascii_digit()))
        .take(MAX_TERMS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_words_are_dropped_in_the_querys_language() {
        assert_eq!(
            query_words("which host do we test releases on before shipping?"),
            ["host", "test", "releases", "shipping"]
        );
        // Looked up as the index holds them: stemmed, each once.
        assert_eq!(
            query_terms("which host do we test releases on before shipping?"),
            ["host", "test", "releas", "ship"]
        );
        assert_eq!(query_terms("release releases released"), ["releas"]);
        assert!(query_terms("What is it on?").is_empty());
        // French: "son" is a function word here.
        assert_eq!(
            query_words("Quel est le nom de son chien ?"),
            ["nom", "chien"]
        );
        // English: "son" is a person.
        assert_eq!(query_words("What does my son study?"), ["son", "study"]);
        assert_eq!(query_words("the user's dog"), ["user", "dog"]);
        assert_eq!(query_terms("Pi 5"), ["pi", "5"]);
    }
}
