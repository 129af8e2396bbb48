// Русский каталог. Ключи те же, что в en.js, в том же порядке.
export default {
  'app.name': 'Parley',
  'chat.members': { one: '{count} участник', few: '{count} участника', many: '{count} участников', other: '{count} участника' },
};
