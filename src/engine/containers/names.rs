//! Container names: validation with Docker's rules and message, and generated
//! `adjective_surname` names for containers created without one.

use crate::engine::{Error, Result};

/// Docker's name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, an optional leading `/`.
pub fn validate(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            let rest: Vec<char> = chars.collect();
            !rest.is_empty()
                && rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        }
        _ => false,
    };
    if !ok {
        return Err(Error::invalid(format!(
            "Invalid container name ({bare}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(format!("/{bare}"))
}

const ADJECTIVES: &[&str] = &[
    "able", "agile", "amazing", "ample", "bold", "brave", "bright", "brisk", "busy", "calm",
    "candid", "careful", "charming", "cheerful", "clever", "cool", "cosmic", "crisp", "curious",
    "daring", "dazzling", "eager", "earnest", "elated", "elegant", "epic", "fearless", "festive",
    "fervent", "fluent", "focused", "friendly", "gallant", "gentle", "gifted", "glad", "graceful",
    "happy", "hardy", "hopeful", "humble", "jolly", "jovial", "keen", "kind", "lively", "loyal",
    "lucid", "mellow", "merry", "mighty", "modest", "nimble", "noble", "patient", "peaceful",
    "plucky", "polite", "proud", "quick", "quiet", "radiant", "rapid", "relaxed", "serene",
    "sharp", "shiny", "sincere", "smart", "snappy", "spirited", "steady", "stoic", "sturdy",
    "sunny", "swift", "tender", "thirsty", "tidy", "trusty", "upbeat", "vibrant", "vigilant",
    "vivid", "warm", "wise", "witty", "zealous", "zen",
];

const SURNAMES: &[&str] = &[
    "agnesi",
    "al_khwarizmi",
    "archimedes",
    "babbage",
    "banach",
    "bardeen",
    "bell",
    "bohr",
    "boole",
    "borg",
    "brahmagupta",
    "cantor",
    "carson",
    "cerf",
    "chandrasekhar",
    "clarke",
    "copernicus",
    "curie",
    "darwin",
    "descartes",
    "dijkstra",
    "dirac",
    "einstein",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "germain",
    "goldberg",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hertz",
    "hodgkin",
    "hopper",
    "hypatia",
    "johnson",
    "joliot",
    "kepler",
    "knuth",
    "kowalevski",
    "lamarr",
    "lamport",
    "leakey",
    "lovelace",
    "maxwell",
    "mayer",
    "mccarthy",
    "meitner",
    "mendel",
    "mirzakhani",
    "morse",
    "napier",
    "newton",
    "noether",
    "pascal",
    "pasteur",
    "planck",
    "poincare",
    "ramanujan",
    "ritchie",
    "sammet",
    "shannon",
    "sinoussi",
    "snyder",
    "stallman",
    "swirles",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "volta",
    "wiles",
    "williams",
    "wing",
    "wozniak",
    "yalow",
    "yonath",
];

/// A random `adjective_surname`; `attempt` > 0 appends a digit, as Docker does on retries.
pub fn generate(attempt: u32) -> String {
    let bytes = crate::engine::random_bytes(4).unwrap_or_else(|_| vec![0, 1, 2, 3]);
    let a = u16::from_le_bytes([bytes[0], bytes[1]]) as usize % ADJECTIVES.len();
    let s = u16::from_le_bytes([bytes[2], bytes[3]]) as usize % SURNAMES.len();
    let name = format!("{}_{}", ADJECTIVES[a], SURNAMES[s]);
    if attempt > 0 {
        format!("{name}{}", bytes[0] % 10)
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_follows_docker() {
        assert_eq!(validate("web").unwrap(), "/web");
        assert_eq!(validate("/web-1.a_b").unwrap(), "/web-1.a_b");
        assert!(validate("a").is_err());
        assert!(validate("-web").is_err());
        assert!(validate("we b").is_err());
        let e = validate("bad name").unwrap_err().to_string();
        assert_eq!(
            e,
            "Invalid container name (bad name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        );
    }

    #[test]
    fn generated_names_are_valid() {
        for i in 0..50 {
            let n = generate(i % 3);
            assert!(validate(&n).is_ok(), "{n}");
            assert!(n.contains('_'));
        }
    }
}
