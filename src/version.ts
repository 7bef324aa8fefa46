/** cairn's version, reported by GET /version and in IDInfo. Keep in step with package.json. */
export const VERSION = '0.1.0'
