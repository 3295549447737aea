//! Replies cut to what each chat network carries: IRC lines of at most 512 bytes as the server
//! relays them (prefix, command, target and CRLF included), Telegram messages of at most 4096
//! characters. Pure functions the channel adapters call before they send.

/// The longest IRC line, CRLF included (RFC 1459 and RFC 2812).
pub const IRC_LINE_BYTES: usize = 512;
/// The longest host name a server may put in the prefix it relays our message with.
const IRC_HOST_BYTES: usize = 63;
/// The longest Telegram message text, in characters.
pub const TELEGRAM_TEXT_CHARS: usize = 4096;

/// The bytes of text one `PRIVMSG` to `target` can carry once the server has prefixed it with
/// `:nick!user@host ` (the host is unknown to the bot, so its longest form is assumed).
pub fn irc_text_budget(nick: &str, user: &str, target: &str) -> usize {
    let prefix = 1 + nick.len() + 1 + user.len().max(10) + 1 + IRC_HOST_BYTES + 1;
    let command = "PRIVMSG ".len() + target.len() + " :".len();
    IRC_LINE_BYTES.saturating_sub(prefix + command + 2).max(1)
}

/// `text` as IRC message bodies of at most `budget` bytes each: one per line of the text (IRC
/// carries no line breaks), long lines cut at the last space that fits, else at a character
/// boundary. Empty lines are left out; no piece is empty.
pub fn split_irc(text: &str, budget: usize) -> Vec<String> {
    let budget = budget.max(4);
    let mut pieces = Vec::new();
    for line in text.split(['\n', '\r']) {
        let line: String = line.chars().filter(|c| !c.is_control() || *c == '\t').collect();
        let mut rest = line.trim_end();
        while !rest.is_empty() {
            if rest.len() <= budget {
                pieces.push(rest.to_owned());
                break;
            }
            let mut cut = budget;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            // Cut at the last space that fits, unless that leaves a very short piece.
            if let Some(space) = rest[..cut].rfind(' ').filter(|s| *s >= cut / 2) {
                cut = space;
            }
            pieces.push(rest[..cut].to_owned());
            rest = rest[cut..].trim_start_matches(' ');
        }
    }
    pieces
}

/// `text` as Telegram messages of at most `limit` characters: cut at the last line break, else
/// the last space, in the second half of the window, else at the limit.
pub fn split_chars(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut pieces = Vec::new();
    let mut rest: &str = text.trim();
    while !rest.is_empty() {
        let end = rest.char_indices().nth(limit).map_or(rest.len(), |(i, _)| i);
        if end == rest.len() {
            pieces.push(rest.to_owned());
            break;
        }
        let window = &rest[..end];
        let half = window.char_indices().nth(limit / 2).map_or(0, |(i, _)| i);
        let cut = window
            .rfind('\n')
            .filter(|i| *i >= half)
            .or_else(|| window.rfind(' ').filter(|i| *i >= half))
            .unwrap_or(end);
        pieces.push(rest[..cut].trim_end().to_owned());
        rest = rest[cut..].trim_start();
    }
    pieces.retain(|p| !p.is_empty());
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_irc_budget_leaves_room_for_the_relayed_prefix() {
        let budget = irc_text_budget("clawbot", "clawbot", "#room");
        let longest = format!(
            ":clawbot!{}@{} PRIVMSG #room :{}\r\n",
            "u".repeat(10),
            "h".repeat(63),
            "x".repeat(budget)
        );
        assert_eq!(longest.len(), IRC_LINE_BYTES);
    }

    #[test]
    fn irc_pieces_never_exceed_the_budget_and_keep_every_word() {
        let text = "word ".repeat(300) + "\nsecond line\n\nthird";
        let pieces = split_irc(&text, 100);
        assert!(pieces.iter().all(|p| p.len() <= 100 && !p.is_empty()));
        let joined: Vec<&str> = pieces.iter().flat_map(|p| p.split_whitespace()).collect();
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(joined, words);
    }

    #[test]
    fn irc_pieces_cut_multibyte_text_on_character_boundaries() {
        let text = "é".repeat(100);
        let pieces = split_irc(&text, 11);
        assert!(pieces.iter().all(|p| p.len() <= 11));
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn telegram_pieces_hold_at_most_the_limit_of_characters() {
        let text = "ü".repeat(5000);
        let pieces = split_chars(&text, TELEGRAM_TEXT_CHARS);
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| p.chars().count() <= TELEGRAM_TEXT_CHARS));
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn telegram_pieces_prefer_a_line_break() {
        let text = format!("{}\n{}", "a".repeat(3000), "b".repeat(3000));
        let pieces = split_chars(&text, TELEGRAM_TEXT_CHARS);
        assert_eq!(pieces, vec!["a".repeat(3000), "b".repeat(3000)]);
    }
}
