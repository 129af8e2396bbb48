// The Files tab of the chat details: the attachments of the chat's messages, newest
// first, a page at a time (GET /chats/{id}/files).

import * as actions from '../actions.js';
import { h, icon } from '../dom.js';
import { displayName, formatShort, formatSize } from '../format.js';
import { errorText, t } from '../i18n.js';

const PAGE = 30;

/** Tabs "Members" / "Files" over the members list (none in a direct chat). */
export function infoTabs(chat, members) {
  const files = h('div', { class: 'pick-list', role: 'list', testid: 'chat-files' });
  const names = chat.type === 'direct' ? ['files'] : ['members', 'files'];
  const panels = { members, files };
  let loaded = false;
  const buttons = names.map((name) => h('button', {
    class: 'info-tab', role: 'tab', type: 'button', testid: `chat-info-tab-${name}`,
    onclick: () => show(name),
  }, t(name === 'members' ? 'chatinfo.members' : 'files.tab')));
  const show = (name) => {
    names.forEach((n, i) => {
      buttons[i].setAttribute('aria-selected', String(n === name));
      panels[n].hidden = n !== name;
    });
    if (name === 'files' && !loaded) {
      loaded = true;
      loadFiles(files, chat.id);
    }
  };
  show(names[0]);
  return [h('div', { class: 'info-tabs', role: 'tablist' }, buttons), members, files];
}

async function loadFiles(box, chatId, before = undefined) {
  let page;
  try {
    page = await actions.chatFiles(chatId, before, PAGE);
  } catch (error) {
    box.append(h('div', { class: 'list-empty', role: 'listitem' }, errorText(error)));
    return;
  }
  box.querySelector('.files-more')?.remove();
  if (!page.length && before === undefined) {
    box.append(h('div', { class: 'list-empty', role: 'listitem', testid: 'chat-files-empty' }, t('files.none')));
    return;
  }
  box.append(...page.map(fileRow));
  if (page.length === PAGE) {
    const last = page[page.length - 1].attachment.id;
    const more = h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => loadFiles(box, chatId, last) }, t('files.more'));
    box.append(h('div', { class: 'files-more', role: 'listitem' }, more));
  }
}

function fileRow(file) {
  const att = file.attachment;
  return h('a', { class: 'pick-item file-row', role: 'listitem', href: att.url, download: att.filename, testid: `chat-file-${att.id}` },
    icon('file'),
    h('span', { class: 'pick-text' },
      h('span', { class: 'msg-file-name' }, att.filename),
      h('span', { class: 'msg-file-size' },
        `${formatSize(att.size || 0)} · ${file.sender ? displayName(file.sender) : t('files.unknownSender')} · ${formatShort(file.created_at)}`)));
}
