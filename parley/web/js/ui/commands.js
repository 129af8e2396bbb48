// Commands in the composer: typing "/" at the start lists the chat's commands (built-in and
// its bots') with their descriptions; ↑/↓ move, Tab or Enter complete, Escape closes. On
// send, a known command is run instead of being posted: built-ins by the client through
// the API, bots' commands sent to their bot. A bot's ephemeral answer shows as a notice.

import * as actions from '../actions.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import * as store from '../state.js';
import { completionList } from './completion.js';
import { toast } from './toast.js';

const { state } = store;
const MAX = 10;
const CACHE_MS = 30000;
const known = new Map(); // chat id → {at, commands}

export async function commandsOf(chatId) {
  const cached = known.get(chatId);
  if (cached && Date.now() - cached.at < CACHE_MS) return cached.commands;
  const commands = await actions.listCommands(chatId);
  known.set(chatId, { at: Date.now(), commands });
  return commands;
}

const describe = (c) => (c.bot ? c.description || c.bot.display_name : t(`commands.${c.command.slice(1)}`));

export function mountCommandBox(input) {
  const box = h('div', { class: 'mention-box command-box', id: 'command-box', testid: 'command-box', role: 'listbox', 'aria-label': t('commands.list'), hidden: true });
  input.parentNode.insertBefore(box, input);
  const list = completionList(input, box, {
    option: (c) => [{ testid: `command-option-${c.command.slice(1)}` },
      h('span', { class: 'mention-name' }, c.command), h('span', { class: 'mention-username' }, describe(c))],
    insert: (c) => {
      const rest = input.value.replace(/^\/\S*\s*/, '');
      input.value = `${c.command} ${rest}`;
      input.setSelectionRange(input.value.length, input.value.length);
    },
  });

  const update = () => {
    const m = input.value.slice(0, input.selectionStart).match(/^\/([a-z0-9_-]*)$/i);
    const chatId = state.activeChatId;
    if (!m || !(chatId > 0)) return list.close();
    const prefix = m[1].toLowerCase();
    return list.showLatest(async () => (await commandsOf(chatId))
      .filter((c) => c.command.slice(1).startsWith(prefix)).slice(0, MAX));
  };
  return { update, close: list.close, handleKey: list.handleKey };
}

/** Runs `content` when it is a command of the chat: true when it was (nothing to post). */
export async function runComposerCommand(chatId, content, send) {
  const m = content.match(/^\/([a-z0-9_-]+)(?:\s+([\s\S]*))?$/i);
  if (!m || !(chatId > 0)) return false;
  const command = `/${m[1].toLowerCase()}`;
  const text = (m[2] || '').trim();
  let commands;
  try {
    commands = await commandsOf(chatId);
  } catch {
    return false;
  }
  const found = commands.find((c) => c.command === command);
  if (!found) return false;
  try {
    if (found.bot) {
      await actions.runCommand(chatId, command, text);
      return true;
    }
    return await builtin(chatId, command, text, send);
  } catch (error) {
    toast(error.detail || t('error.generic'), { error: true });
    return true;
  }
}

async function builtin(chatId, command, text, send) {
  switch (command) {
    case '/me':
      if (text) send(`_${state.me.display_name || state.me.username} ${text}_`);
      return true;
    case '/shrug':
      // in a code span: the Markdown subset has no escapes, and `_(ツ)_` would be italic
      send(`${text ? `${text} ` : ''}\`¯\\_(ツ)_/¯\``);
      return true;
    case '/mute':
      await actions.muteChat(chatId, 'forever');
      toast(t('commands.muted'));
      return true;
    case '/unmute':
      await actions.muteChat(chatId, null);
      toast(t('commands.unmuted'));
      return true;
    case '/leave':
      await actions.leaveChat(chatId);
      return true;
    case '/topic':
      await actions.updateChat(chatId, { description: text });
      toast(t('commands.topicSet'));
      return true;
    case '/invite': {
      const name = text.replace(/^@/, '').toLowerCase();
      const [user] = (await actions.searchUsers(name)).filter((u) => u.username.toLowerCase() === name);
      if (!user) {
        toast(t('commands.noSuchUser', { name }), { error: true });
        return true;
      }
      await actions.addMembers(chatId, [user.id]);
      toast(t('commands.invited', { name: user.display_name }));
      return true;
    }
    case '/status': // presence of mind: "/status text" sets it, "/status" alone clears it
      await actions.setStatus(text ? { emoji: null, text, until: null } : null);
      toast(text ? t('mind.status.saved') : t('mind.status.cleared'));
      return true;
    case '/dnd': { // "/dnd" for an hour, "/dnd 30" minutes, "/dnd off"
      if (text.trim().toLowerCase() === 'off') {
        await actions.setDnd(null);
        toast(t('mind.dnd.offDone'));
        return true;
      }
      const minutes = Number.parseInt(text, 10) > 0 ? Number.parseInt(text, 10) : 60;
      const until = new Date(Date.now() + minutes * 60 * 1000);
      await actions.setDnd(until.toISOString());
      toast(t('mind.dnd.on', { time: until.toLocaleTimeString() }));
      return true;
    }
    default:
      toast(t('commands.unavailable', { command }), { error: true });
      return true;
  }
}

// A bot's answer that only I see.
store.on('ephemeral', (frame) => {
  toast(`${frame.bot?.display_name || t('common.unknownUser')}: ${frame.text}`, { ms: 10000 });
});
