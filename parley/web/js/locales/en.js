// English catalog. Keys are grouped by screen; keep ru.js in the same order.
export default {
  'app.name': 'Parley',
  'chat.members': { one: '{count} member', other: '{count} members' },
};
