//! `report.html`: one self-contained page per results folder — the run's figures and a token
//! explorer — that opens in any browser with no network and no framework.
//!
//! ```text
//!   <h1>title</h1> <p>intro</p>
//!   token explorer:
//!     legend            one colour per expert
//!     domain filter     <select>: all domains, or one
//!     samples           <span class="tok eN" data-w="…">byte</span> per token, coloured by its
//!                       expert; hovering shows its weights (gates, or domain probabilities)
//!   <figure><img src="data:image/png;base64,…"> caption</figure>     every PNG embedded
//! ```
//! A Content-Security-Policy forbids every fetch (`default-src 'none'`; images only from
//! `data:`), so the page provably needs nothing outside itself. Script errors and
//! `console.error` are written into `<pre id="errors">` (empty when all went well), and the
//! script marks `<body data-ready="yes">` when it has finished — what the headless-browser test
//! reads back.
//!
//! The data model ([`TokenExplorer`]) is plain: any run or experiment fills it (the MoE LM run
//! with gates or prefix domain probabilities; E5 with a predicted domain per sample).

use crate::error::{Error, Result};
use base64::Engine as _;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The token explorer's data: samples of tokens, each token with its expert and the numbers
/// shown when the pointer is on it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenExplorer {
    /// One name per expert: the legend, and the colour of every token `expert` index.
    pub experts: Vec<String>,
    /// What the hover numbers are, e.g. "gates" or "domain probabilities after this prefix".
    pub weights_label: String,
    /// One name per hover number (the experts for gates, the domains for probabilities).
    pub weight_names: Vec<String>,
    /// The domain filter's choices; every sample names one by index.
    pub domains: Vec<String>,
    pub samples: Vec<ExplorerSample>,
}

/// One held-out sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExplorerSample {
    /// Its true domain, an index into [`TokenExplorer::domains`].
    pub domain: usize,
    /// A predicted domain (index into `domains`) and its probability, shown beside the true one.
    pub predicted: Option<(usize, f64)>,
    pub tokens: Vec<ExplorerToken>,
}

/// One token: its text (may be empty, e.g. the continuation bytes of a UTF-8 character), its
/// expert (index into [`TokenExplorer::experts`]) and one weight per `weight_names`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExplorerToken {
    pub text: String,
    pub expert: usize,
    pub weights: Vec<f64>,
}

impl TokenExplorer {
    /// Every index in range and every token with one weight per name; the error names the
    /// sample and token.
    pub fn check(&self) -> Result<()> {
        for (s, sample) in self.samples.iter().enumerate() {
            if sample.domain >= self.domains.len() || sample.predicted.is_some_and(|(d, _)| d >= self.domains.len()) {
                return Err(Error::bad_value(
                    "token explorer",
                    format!("sample {s}"),
                    &format!("names a domain outside the {} given", self.domains.len()),
                ));
            }
            for (t, token) in sample.tokens.iter().enumerate() {
                if token.expert >= self.experts.len() || token.weights.len() != self.weight_names.len() {
                    return Err(Error::bad_value(
                        "token explorer",
                        format!("sample {s}, token {t}"),
                        &format!(
                            "has expert {} and {} weights; there are {} experts and {} weight names",
                            token.expert,
                            token.weights.len(),
                            self.experts.len(),
                            self.weight_names.len()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Tokens over all samples: the number of token elements the page holds.
    pub fn n_tokens(&self) -> usize {
        self.samples.iter().map(|s| s.tokens.len()).sum()
    }
}

/// The text of each byte token for display: a UTF-8 character's whole text on its first byte
/// and "" on its continuation bytes, so the sample reads as text; a byte that is not valid
/// UTF-8 shows as U+FFFD.
pub fn byte_token_texts(ids: &[usize]) -> Vec<String> {
    let mut out = vec![String::new(); ids.len()];
    let mut i = 0;
    while i < ids.len() {
        let Ok(b) = u8::try_from(ids[i]) else {
            out[i] = "\u{FFFD}".into();
            i += 1;
            continue;
        };
        let len = match b {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 0,
        };
        let bytes: Option<Vec<u8>> =
            ids.get(i..i + len.max(1)).and_then(|s| s.iter().map(|&x| u8::try_from(x).ok()).collect());
        match bytes.as_deref().map(std::str::from_utf8) {
            Some(Ok(ch)) if len > 0 => {
                out[i] = ch.to_string();
                i += len;
            }
            _ => {
                out[i] = "\u{FFFD}".into();
                i += 1;
            }
        }
    }
    out
}

/// Writes the page to `path` atomically (see [`render_report_html`]).
pub fn write_report_html(
    path: &Path,
    title: &str,
    intro: &str,
    figures: &[(String, PathBuf)],
    explorer: &TokenExplorer,
) -> Result<()> {
    let html = render_report_html(title, intro, figures, explorer)?;
    crate::io::write_atomic(path, html.as_bytes())
}

/// The page as a string: `title`, `intro` (plain text; a blank line starts a paragraph), each
/// (caption, PNG file) figure embedded, and the token explorer. A PNG that cannot be read is an
/// error naming it; so is an explorer whose indices do not fit ([`TokenExplorer::check`]).
pub fn render_report_html(
    title: &str,
    intro: &str,
    figures: &[(String, PathBuf)],
    explorer: &TokenExplorer,
) -> Result<String> {
    explorer.check()?;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n\
         <script>{ERROR_HOOKS}</script>\n<style>{CSS}{}</style>\n</head>\n<body>\n\
         <pre id=\"errors\" hidden></pre>\n<h1>{}</h1>\n",
        escape(title),
        expert_css(explorer.experts.len()),
        escape(title)
    );
    for para in intro.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let _ = writeln!(h, "<p>{}</p>", escape(para));
    }
    explorer_html(&mut h, explorer);
    if !figures.is_empty() {
        h += "<h2>Figures</h2>\n";
    }
    for (caption, png) in figures {
        let bytes = std::fs::read(png).map_err(|e| Error::io(png, e))?;
        if !bytes.starts_with(b"\x89PNG") {
            return Err(Error::bad_value("figure", png.display(), "is not a PNG file"));
        }
        let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let _ = writeln!(
            h,
            "<figure><img alt=\"{c}\" src=\"data:image/png;base64,{data}\"><figcaption>{c}</figcaption></figure>",
            c = escape(caption)
        );
    }
    let _ = write!(h, "<script>{EXPLORER_JS}</script>\n</body>\n</html>\n");
    Ok(h)
}

fn explorer_html(h: &mut String, x: &TokenExplorer) {
    h.push_str("<h2>Token explorer</h2>\n<section id=\"explorer\">\n");
    let _ = writeln!(
        h,
        "<p class=\"how\">Each token is coloured by its expert; point at one to see its {}.</p>",
        escape(&x.weights_label)
    );
    h.push_str("<div class=\"legend\">");
    for (e, name) in x.experts.iter().enumerate() {
        let _ = write!(h, "<span class=\"key e{e}\">{}</span>", escape(name));
    }
    h.push_str("</div>\n<label>domain <select id=\"domain-filter\"><option value=\"\">all domains</option>");
    for (d, name) in x.domains.iter().enumerate() {
        let _ = write!(h, "<option value=\"{d}\">{}</option>", escape(name));
    }
    h.push_str("</select></label>\n<div id=\"info\">point at a token to see its expert and weights</div>\n");
    // The names the script shows on hover, as data attributes of the explorer.
    let names: Vec<String> = x.weight_names.iter().map(|n| n.replace('|', "/")).collect();
    let experts: Vec<String> = x.experts.iter().map(|n| n.replace('|', "/")).collect();
    let _ = writeln!(
        h,
        "<div id=\"samples\" data-names=\"{}\" data-experts=\"{}\" data-label=\"{}\">",
        escape(&names.join("|")),
        escape(&experts.join("|")),
        escape(&x.weights_label)
    );
    for (s, sample) in x.samples.iter().enumerate() {
        let domain = &x.domains[sample.domain];
        let _ = write!(h, "<div class=\"sample\" data-domain=\"{}\"><h3>sample {s}: {}", sample.domain, escape(domain));
        if let Some((p, conf)) = sample.predicted {
            let mark = if p == sample.domain { "right" } else { "wrong" };
            let _ = write!(
                h,
                " <span class=\"pred {mark}\">predicted {} ({:.1} %)</span>",
                escape(&x.domains[p]),
                100.0 * conf
            );
        }
        h.push_str("</h3><div class=\"text\">");
        for token in &sample.tokens {
            let w: Vec<String> = token.weights.iter().map(|v| format!("{v:.3}")).collect();
            let nl = if token.text == "\n" { " nl" } else { "" };
            let _ = write!(
                h,
                "<span class=\"tok e{}{nl}\" data-e=\"{}\" data-w=\"{}\">{}</span>",
                token.expert,
                token.expert,
                w.join(","),
                escape(&token.text)
            );
        }
        h.push_str("</div></div>\n");
    }
    h.push_str("</div>\n</section>\n");
}

/// HTML text and attribute escaping.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One background colour per expert: hues a golden angle apart, so neighbours differ most.
fn expert_css(n_experts: usize) -> String {
    let mut css = String::new();
    for e in 0..n_experts {
        let hue = (e as f64 * 137.508) % 360.0;
        let _ = write!(css, ".e{e}{{background:hsl({hue:.0},75%,80%)}}");
    }
    css
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{font-style:italic;color:#555}\
.legend .key{display:inline-block;padding:.1em .6em;margin:0 .3em .3em 0;border-radius:3px}\
#info{font-family:monospace;min-height:1.4em;margin:.6em 0;padding:.3em;background:#f6f6f6}\
.text{font-family:monospace;white-space:pre-wrap;line-height:1.6;border:1px solid #eee;padding:.5em}\
.tok{cursor:default}.tok:hover{outline:2px solid #333}.tok.nl::before{content:'\\23CE';color:#888}\
.pred{font-weight:normal;font-size:.8em;padding:.1em .4em;border-radius:3px}.right{background:#d8f0d8}.wrong{background:#f6d0d0}\
#errors{color:#a00;background:#fee;padding:.5em}";

/// Installed first, so errors anywhere later in the page are caught and shown.
const ERROR_HOOKS: &str = "window.pageErrors=[];\
function reportError(m){window.pageErrors.push(String(m));var e=document.getElementById('errors');\
if(e){e.hidden=false;e.textContent=window.pageErrors.join('\\n');}}\
window.addEventListener('error',function(ev){reportError('error: '+ev.message);});\
var consoleError=console.error;console.error=function(){reportError('console.error: '+\
Array.prototype.join.call(arguments,' '));consoleError.apply(console,arguments);};";

/// Hover shows a token's expert and weights in #info; the select hides other domains' samples.
/// `report.html#domain=2` opens with the filter on domain 2, `#hover=17` as if the pointer were
/// on token 17 (counted over the page): links to a view, and what the browser test drives.
const EXPLORER_JS: &str = "(function(){\
var box=document.getElementById('samples');var info=document.getElementById('info');\
var names=box.dataset.names.split('|');var experts=box.dataset.experts.split('|');\
box.addEventListener('mouseover',function(ev){var t=ev.target;if(!t.classList.contains('tok'))return;\
var w=t.dataset.w.split(',');var parts=[];for(var i=0;i<w.length;i++){parts.push(names[i]+' '+w[i]);}\
info.textContent=JSON.stringify(t.textContent)+'  '+experts[+t.dataset.e]+'  |  '+box.dataset.label+': '+parts.join('  ');});\
document.getElementById('domain-filter').addEventListener('change',function(ev){var v=ev.target.value;\
var s=document.querySelectorAll('.sample');for(var i=0;i<s.length;i++){\
s[i].style.display=(v===''||s[i].dataset.domain===v)?'':'none';}});\
var sel=document.getElementById('domain-filter');\
var d=/domain=(\\d+)/.exec(location.hash);if(d){sel.value=d[1];sel.dispatchEvent(new Event('change'));}\
var h=/hover=(\\d+)/.exec(location.hash);var toks=document.querySelectorAll('.tok');\
if(h&&toks[+h[1]]){toks[+h[1]].dispatchEvent(new MouseEvent('mouseover',{bubbles:true}));}\
if(window.pageErrors.length){var e=document.getElementById('errors');e.hidden=false;\
e.textContent=window.pageErrors.join('\\n');}\
document.body.dataset.ready='yes';})();";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_texts_keep_utf8_characters_whole_on_their_first_byte() {
        let ids: Vec<usize> = "a·b".bytes().map(usize::from).collect();
        assert_eq!(byte_token_texts(&ids), vec!["a", "·", "", "b"]);
        assert_eq!(byte_token_texts(&[0xFF, 65, 0xC2]), vec!["\u{FFFD}", "A", "\u{FFFD}"]);
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
