// The common :shortcodes: (GitHub / Slack names) for emoji: the composer turns `:tada:`
// into 🎉 as the closing colon is typed, and the picker's search knows these names too.
// Pure (no DOM): the unit tests in tests/js/ run it in Node.

export const SHORTCODES = {
  '+1': '👍', thumbsup: '👍', '-1': '👎', thumbsdown: '👎', ok_hand: '👌', clap: '👏',
  wave: '👋', pray: '🙏', muscle: '💪', raised_hands: '🙌', handshake: '🤝', point_up: '☝️',
  v: '✌️', crossed_fingers: '🤞', facepalm: '🤦', shrug: '🤷', eyes: '👀',
  smile: '😄', smiley: '😃', grin: '😁', grinning: '😀', laughing: '😆', joy: '😂', rofl: '🤣',
  sweat_smile: '😅', slightly_smiling_face: '🙂', upside_down_face: '🙃', wink: '😉',
  blush: '😊', innocent: '😇', heart_eyes: '😍', star_struck: '🤩', kissing_heart: '😘',
  yum: '😋', stuck_out_tongue: '😛', zany_face: '🤪', hugs: '🤗', thinking: '🤔',
  shushing_face: '🤫', neutral_face: '😐', expressionless: '😑', no_mouth: '😶',
  smirk: '😏', unamused: '😒', roll_eyes: '🙄', grimacing: '😬', relieved: '😌',
  pensive: '😔', sleepy: '😪', sleeping: '😴', mask: '😷', nerd_face: '🤓',
  sunglasses: '😎', confused: '😕', worried: '😟', open_mouth: '😮', astonished: '😲',
  flushed: '😳', pleading_face: '🥺', cry: '😢', sob: '😭', scream: '😱', sweat: '😓',
  angry: '😠', rage: '😡', skull: '💀', poop: '💩', clown_face: '🤡', ghost: '👻',
  robot: '🤖', see_no_evil: '🙈', hear_no_evil: '🙉', speak_no_evil: '🙊',
  heart: '❤️', orange_heart: '🧡', yellow_heart: '💛', green_heart: '💚', blue_heart: '💙',
  purple_heart: '💜', black_heart: '🖤', broken_heart: '💔', sparkling_heart: '💖',
  fire: '🔥', '100': '💯', sparkles: '✨', star: '⭐', boom: '💥', zap: '⚡', tada: '🎉',
  confetti_ball: '🎊', balloon: '🎈', gift: '🎁', birthday: '🎂', trophy: '🏆', medal: '🏅',
  rocket: '🚀', bulb: '💡', memo: '📝', calendar: '📅', bell: '🔔', lock: '🔒', key: '🔑',
  coffee: '☕', tea: '🍵', beer: '🍺', beers: '🍻', wine_glass: '🍷', pizza: '🍕',
  cake: '🍰', sunny: '☀️', rainbow: '🌈', snowflake: '❄️', cat: '🐱', dog: '🐶',
  white_check_mark: '✅', heavy_check_mark: '✔️', x: '❌', warning: '⚠️', question: '❓',
  exclamation: '❗', no_entry: '⛔', point_right: '👉', point_left: '👈', ok: '🆗',
};

/** The emoji of a shortcode written with or without its colons (`tada`, `:+1:`), else null. */
export function emojiOf(name) {
  const key = String(name || '').trim().toLowerCase().replace(/^:|:$/g, '');
  return Object.hasOwn(SHORTCODES, key) ? SHORTCODES[key] : null;
}

/** Every shortcode of `emoji` (for search): `['+1', 'thumbsup']` for 👍. */
export function shortcodesOf(emoji) {
  return Object.keys(SHORTCODES).filter((key) => SHORTCODES[key] === emoji);
}

/**
 * `text` with a `:shortcode:` that ends at `caret` replaced by its emoji (as the closing
 * colon is typed): {text, caret}, or null when there is nothing to replace. Code spans and
 * times like 10:30: are left alone (the name must follow a space or the start).
 */
export function expandShortcode(text, caret) {
  const before = text.slice(0, caret);
  const m = before.match(/(^|[\s(])(:([+\-\w]{1,32}):)$/);
  if (!m) return null;
  const emoji = emojiOf(m[3]);
  if (!emoji) return null;
  if ((before.match(/`/g) || []).length % 2 === 1) return null; // inside `code`
  const start = caret - m[2].length;
  return { text: text.slice(0, start) + emoji + text.slice(caret), caret: start + emoji.length };
}
