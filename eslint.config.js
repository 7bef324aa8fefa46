// Lint: neostandard (the successor of standard, whose style this code follows) with typescript-eslint, plus the
// type-aware rules that catch what a reviewer misses: promises nobody waits for or catches.
import neostandard from 'neostandard'
import tseslint from 'typescript-eslint'

export default [
  { ignores: ['dist/**', 'node_modules/**', 'peers/**', 'test/stubs/**', 'eslint.config.js'] },
  ...neostandard({ ts: true }),
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      // node:test's describe/it return promises the runner tracks itself
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] }],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/await-thenable': 'error'
    }
  },
  {
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      // `void promise` marks a promise deliberately not awaited (its errors are caught inside)
      'no-void': ['error', { allowAsStatement: true }],
      // objects are packed by meaning, several short properties per line
      '@stylistic/object-property-newline': 'off',
      // a `let` read by a closure made before its one assignment cannot be a const
      'prefer-const': ['error', { destructuring: 'all', ignoreReadBeforeAssign: true }],
      // as tsc's noUnusedLocals: a leading underscore marks a value left out on purpose
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }]
    }
  }
]
