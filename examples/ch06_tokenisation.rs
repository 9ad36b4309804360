//! Chapter 06 — tokenisation (notebooks-md/06-tokenisation.md).
//!
//! Shows, in order:
//! 1. Bytes: UTF-8 gives every character 1 to 4 bytes; 256 ids cover every text there is.
//! 2. BPE by hand on "aaabdaaabac": the pair counts, each merge, the final tokens.
//! 3. BPE on the built-in text: the first merges with their counts, one word's tokens as the
//!    merges are learned, and how many bytes a token holds at each vocabulary size.
//! 4. Without pre-tokenisation (split none), merges glue words to the spaces around them.
//! 5. Our BPE-1000 next to GPT-2's 50,257 tokens on the same sentences.
//! 6. Why byte-level never has an unknown token: a word-level vocabulary from the same text
//!    meets new words; 1,000 random Unicode strings round-trip exactly through every tokeniser.
//! 7. A compact vocabulary: the GPT-2 ids the built-in text uses, renumbered densely.
//! 8. The BPE file: saved, read back, the same tokens.
//!
//! Exits 1 if a stated fact does not hold (a hand-computed merge, a round trip, a reload).
//! Run: `cargo run --release --example ch06_tokenisation`

use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Instant;
use tinymoe::data::bpe::{learn_merges, merge, split_words, Bpe, Pair, Split};
use tinymoe::data::compact::Compact;
use tinymoe::data::gpt2::Gpt2;
use tinymoe::data::text::builtin;
use tinymoe::data::tokenizer::{Bytes, Tokenizer};

/// Where the BPE file goes, relative to the current directory.
const OUT_DIR: &str = "target/examples-out";

#[path = "common/facts.rs"]
mod facts;
use facts::Facts;

fn main() {
    let mut facts = Facts::default();
    let text = builtin();
    bytes(&mut facts);
    by_hand(&mut facts);
    let bpe = on_the_builtin_text(&text, &mut facts);
    without_split(&text);
    against_gpt2(&bpe);
    never_unknown(&text, &bpe, &mut facts);
    compact_vocabulary(&text, &mut facts);
    the_file(&bpe, &text, &mut facts);
    facts.finish(None);
}

/// Tokens as `a | b | c`.
fn pieces(tok: &dyn Tokenizer, ids: &[usize]) -> String {
    ids.iter().map(|&id| tok.token_text(id)).collect::<Vec<_>>().join(" | ")
}

fn bytes(facts: &mut Facts) {
    println!("== 1. Bytes: 256 ids, every text");
    for c in ['a', 'é', '€', '😀'] {
        let mut buf = [0u8; 4];
        let utf8 = c.encode_utf8(&mut buf).as_bytes();
        println!(
            "{c:?} U+{:04X} → UTF-8 {:?} ({} byte{})",
            c as u32,
            utf8,
            utf8.len(),
            if utf8.len() > 1 { "s" } else { "" }
        );
    }
    let s = "Grüße 😀";
    let ids = Bytes.encode(s);
    println!("{s:?}: {} characters, {} byte tokens: {ids:?}", s.chars().count(), ids.len());
    println!("as tokens: {}", pieces(&Bytes, &ids));
    facts.check("bytes decode back exactly", Bytes.decode(&ids) == s);
}

fn by_hand(facts: &mut Facts) {
    println!("\n== 2. BPE by hand on \"aaabdaaabac\"");
    let name = |id: usize| match id {
        256 => "Z".to_string(),
        257 => "Y".to_string(),
        258 => "X".to_string(),
        b => (b as u8 as char).to_string(),
    };
    let mut ids: Vec<usize> = b"aaabdaaabac".iter().map(|&b| usize::from(b)).collect();
    let merges = learn_merges("aaabdaaabac", 10, Split::Words);
    let hand =
        Bpe::from_merges(merges.iter().map(|m| m.pair).collect(), Split::Words).expect("learned merges are valid");
    for m in &merges {
        let mut counts: BTreeMap<Pair, usize> = BTreeMap::new();
        for p in ids.windows(2) {
            *counts.entry((p[0], p[1])).or_insert(0) += 1;
        }
        let listed: Vec<String> = counts.iter().map(|(&(a, b), c)| format!("{}{}×{c}", name(a), name(b))).collect();
        println!("  {:<24} pairs {}", ids.iter().map(|&i| name(i)).collect::<String>(), listed.join(" "));
        ids = merge(&ids, m.pair, m.id);
        println!(
            "  merge {} = {} + {} = {:?} (seen {} times) → {}",
            m.id,
            name(m.pair.0),
            name(m.pair.1),
            hand.token_text(m.id),
            m.count,
            ids.iter().map(|&i| name(i)).collect::<String>()
        );
    }
    println!("  no pair occurs twice any more: training stops after {} merges", merges.len());
    let learned: Vec<(Pair, usize)> = merges.iter().map(|m| (m.pair, m.count)).collect();
    facts.check(
        "the merges are a+a (×4), then a+b (×2, ties Z+a: the smaller ids win), then Z+Y (×2)",
        learned == [((97, 97), 4), ((97, 98), 2), ((256, 257), 2)],
    );
    let bpe = Bpe::train("aaabdaaabac", 1000, Split::Words).expect("1000 ≥ 257");
    let encoded = bpe.encode("aaabdaaabac");
    println!("  encode(\"aaabdaaabac\") = {encoded:?}  (X d X a c)");
    facts.check("encode replays the merges to X d X a c", encoded == [258, 100, 258, 97, 99]);
}

fn on_the_builtin_text(text: &str, facts: &mut Facts) -> Bpe {
    println!("\n== 3. BPE on the built-in text ({} bytes, {} words and spaces)", text.len(), split_words(text).len());
    let start = Instant::now();
    let merges = learn_merges(text, 743, Split::Words);
    let seconds = start.elapsed().as_secs_f64();
    println!("learned {} merges in {seconds:.2} s; the first 15:", merges.len());
    let all =
        Bpe::from_merges(merges.iter().map(|m| m.pair).collect(), Split::Words).expect("learned merges are valid");
    for m in merges.iter().take(15) {
        println!(
            "  {:>4} = {:>4} + {:<4} {:>8} + {:<8} → {:<10} seen {} times",
            m.id,
            m.pair.0,
            m.pair.1,
            all.token_text(m.pair.0),
            all.token_text(m.pair.1),
            all.token_text(m.id),
            m.count
        );
    }

    println!("\nhow \" gradients\" is cut as merges are learned (and bytes per token on the whole text):");
    for n in [0, 10, 30, 100, 300, 743] {
        let bpe =
            Bpe::from_merges(merges[..n].iter().map(|m| m.pair).collect(), Split::Words).expect("a prefix is valid");
        let ids = bpe.encode(" gradients");
        let per_token = text.len() as f64 / bpe.encode(text).len() as f64;
        println!(
            "  {n:>3} merges (vocab {:>4}): {:<40} {per_token:.2} bytes/token",
            bpe.vocab_size(),
            pieces(&bpe, &ids)
        );
    }
    let bpe = Bpe::train(text, 1000, Split::Words).expect("1000 ≥ 257");
    facts.check("Bpe::train to vocab 1000 learns the same merges", bpe == all);
    bpe
}

fn without_split(text: &str) {
    println!("\n== 4. No pre-tokenisation: merges cross spaces");
    let merges = learn_merges(text, 12, Split::None);
    let bpe = Bpe::from_merges(merges.iter().map(|m| m.pair).collect(), Split::None).expect("learned merges are valid");
    let shown: Vec<String> = merges.iter().map(|m| bpe.token_text(m.id)).collect();
    println!("first merges with split none:  {}", shown.join("  "));
    let long = learn_merges(text, 743, Split::None);
    let bpe = Bpe::from_merges(long.iter().map(|m| m.pair).collect(), Split::None).expect("learned merges are valid");
    // Tokens in which a space sits between two letters: pieces of two words glued together.
    let spanning: Vec<String> = (256..bpe.vocab_size() - 1)
        .map(|id| bpe.piece(id))
        .filter(|p| p.windows(3).any(|w| w[0].is_ascii_alphabetic() && w[1] == b' ' && w[2].is_ascii_alphabetic()))
        .take(10)
        .map(|p| format!("{:?}", String::from_utf8_lossy(p)))
        .collect();
    println!("some of its 743 tokens that span two words: {}", spanning.join(" "));
}

fn against_gpt2(bpe: &Bpe) {
    println!("\n== 5. Our BPE (vocab {}) next to GPT-2's (vocab 50257)", bpe.vocab_size());
    let start = Instant::now();
    let gpt2 = Gpt2::new();
    gpt2.encode("warm up");
    println!("(GPT-2's ranks are compiled into the binary; parsing them took {:.2} s)", start.elapsed().as_secs_f64());
    for s in [
        "Hello world, def f(x): return x",
        "The gradient of the softmax, checked by finite differences.",
        "Mixture-of-experts routers pick the top-k experts.",
        "Grüße aus Köln 🦀",
    ] {
        println!("{s:?}  ({} bytes)", s.len());
        for (name, tok) in [("ours", bpe as &dyn Tokenizer), ("gpt2", &gpt2)] {
            let ids = tok.encode(s);
            println!("  {name} {:>2} tokens: {}", ids.len(), pieces(tok, &ids));
        }
        println!("  gpt2 ids: {:?}", gpt2.encode(s));
    }
}

fn never_unknown(text: &str, bpe: &Bpe, facts: &mut Facts) {
    println!("\n== 6. Why byte-level never has an unknown token");
    let words: HashSet<&str> = text.split_whitespace().collect();
    let sentence = "Schrödinger's 🦀 tokenises naïve café menus";
    let unknown: Vec<&str> = sentence.split_whitespace().filter(|w| !words.contains(w)).collect();
    println!("a word-level vocabulary of the built-in text has {} words", words.len());
    println!(
        "{sentence:?}: {} of {} words unknown to it: {unknown:?}",
        unknown.len(),
        sentence.split_whitespace().count()
    );
    let ids = bpe.encode(sentence);
    println!("our BPE: {} tokens: {}", ids.len(), pieces(bpe, &ids));
    facts.check("our BPE decodes it back exactly", bpe.decode(&ids) == sentence);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let gpt2 = Gpt2::new();
    let tokenizers: [(&str, &dyn Tokenizer); 3] = [("bytes", &Bytes), ("bpe", bpe), ("gpt2", &gpt2)];
    let mut exact = [0usize; 3];
    let n = 1000;
    for _ in 0..n {
        let len = rng.gen_range(0..20);
        let s: String = (0..len).map(|_| rng.gen::<char>()).collect();
        for (k, (_, tok)) in tokenizers.iter().enumerate() {
            exact[k] += usize::from(tok.decode(&tok.encode(&s)) == s);
        }
    }
    for (k, (name, _)) in tokenizers.iter().enumerate() {
        println!("random Unicode strings that {name} round-trips exactly: {} of {n}", exact[k]);
    }
    facts.check("every random string round-trips through every tokeniser", exact.iter().all(|&e| e == n));
}

fn compact_vocabulary(text: &str, facts: &mut Facts) {
    println!("\n== 7. A compact vocabulary");
    let compact = Compact::build(Box::new(Gpt2::new()), "gpt2", text);
    let used = compact.vocab_size() - 2;
    let d_model = 128;
    println!(
        "the built-in text uses {used} of GPT-2's 50257 ids; compact vocab {} (0 padding, 1 unknown)",
        compact.vocab_size()
    );
    println!(
        "an LM head of d_model {d_model}: {} weights over all of GPT-2, {} over the compact vocab ({:.1}× fewer)",
        50257 * d_model,
        compact.vocab_size() * d_model,
        50257.0 / compact.vocab_size() as f64
    );
    let s = "The gradient of the loss.";
    let ids = compact.encode(s);
    println!("{s:?} → compact ids {ids:?} (GPT-2 ids {:?})", Gpt2::new().encode(s));
    facts.check("seen text round-trips through the compact vocab", compact.decode(&ids) == s);
    let s = "Photosynthesis in chloroplasts";
    let ids = compact.encode(s);
    println!("{s:?} → {ids:?} = {}", pieces(&compact, &ids));
    facts.check("words the text never used become unknown (id 1)", ids.contains(&Compact::UNKNOWN));
}

fn the_file(bpe: &Bpe, text: &str, facts: &mut Facts) {
    println!("\n== 8. The BPE file");
    let dir = Path::new(OUT_DIR);
    let path = dir.join("ch06.bpe");
    let saved = std::fs::create_dir_all(dir)
        .map_err(|e| e.to_string())
        .and_then(|_| bpe.save(&path).map_err(|e| e.to_string()));
    if let Err(e) = saved {
        facts.check(&format!("the BPE file is written ({e})"), false);
        return;
    }
    let file = std::fs::read_to_string(&path).unwrap_or_default();
    println!("{} ({} lines):", path.display(), file.lines().count());
    for line in file.lines().take(8) {
        println!("  {line}");
    }
    match Bpe::load(&path) {
        Ok(loaded) => {
            facts.check("loaded back, it encodes the text to the same ids", loaded.encode(text) == bpe.encode(text))
        }
        Err(e) => facts.check(&format!("the file loads back ({e})"), false),
    }
}
