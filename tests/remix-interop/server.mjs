// A Remix app with sessions in memcached, built from the real Remix packages, for the
// wire-compatibility tests in ../tests/remix_interop.rs.
//
// Environment:
//   MEMCACHE_SERVER     host:port of memcached (required)
//   SESSION_SECRET      the cookie signing secret (required)
//   PORT                port to listen on, 0 = a free port (default 0)
//   SESSION_KEY_PREFIX  memcached key prefix (default: Remix's own, 'remix:session:')
//
// Listens on 127.0.0.1 and prints exactly one line, `listening on http://127.0.0.1:PORT`,
// on stdout once it accepts connections. Errors go to stderr.
//
// Routes (the session cookie is `__session`; values travel as JSON in the query string):
//   GET  /get?key=K              -> {"value": session.get(K) ?? null}
//   GET  /size                   -> {"size": session.size}
//   POST /set?key=K&value=JSON   -> session.set(K, value)
//   POST /flash?key=K&value=JSON -> session.flash(K, value)
//   POST /unset?key=K            -> session.unset(K)
//   POST /destroy                -> session.destroy()
//   POST /regenerate?delete=1    -> session.regenerateId(delete === '1')
// The POST routes answer {"ok": true}.

import * as http from 'node:http'

import { createCookie } from '@remix-run/cookie'
import { createRouter } from '@remix-run/fetch-router'
import { createRequestListener } from '@remix-run/node-fetch-server'
import { Session } from '@remix-run/session'
import { session } from '@remix-run/session-middleware'
import { createMemcacheSessionStorage } from '@remix-run/session-storage-memcache'

function required(name) {
  let value = process.env[name]
  if (value == null || value === '') {
    process.stderr.write(`remix-interop: environment variable ${name} is required\n`)
    process.exit(2)
  }
  return value
}

let memcacheServer = required('MEMCACHE_SERVER')
let secret = required('SESSION_SECRET')
let port = Number(process.env.PORT ?? '0')
let keyPrefix = process.env.SESSION_KEY_PREFIX || undefined

let sessionCookie = createCookie('__session', { secrets: [secret] })
let sessionStorage = createMemcacheSessionStorage(memcacheServer, { keyPrefix })

let router = createRouter({
  middleware: [session(sessionCookie, sessionStorage)],
})

function param(url, name) {
  let value = url.searchParams.get(name)
  if (value == null) {
    throw new Error(`missing query parameter ${name}`)
  }
  return value
}

const ok = () => Response.json({ ok: true })

router.get('/get', ({ get, url }) => {
  return Response.json({ value: get(Session).get(param(url, 'key')) ?? null })
})

router.get('/size', ({ get }) => Response.json({ size: get(Session).size }))

router.post('/set', ({ get, url }) => {
  get(Session).set(param(url, 'key'), JSON.parse(param(url, 'value')))
  return ok()
})

router.post('/flash', ({ get, url }) => {
  get(Session).flash(param(url, 'key'), JSON.parse(param(url, 'value')))
  return ok()
})

router.post('/unset', ({ get, url }) => {
  get(Session).unset(param(url, 'key'))
  return ok()
})

router.post('/destroy', ({ get }) => {
  get(Session).destroy()
  return ok()
})

router.post('/regenerate', ({ get, url }) => {
  get(Session).regenerateId(url.searchParams.get('delete') === '1')
  return ok()
})

let server = http.createServer(
  createRequestListener((request) => router.fetch(request), {
    onError(error) {
      process.stderr.write(`remix-interop: ${error?.stack ?? error}\n`)
      return Response.json({ error: String(error?.message ?? error) }, { status: 500 })
    },
  }),
)

server.on('error', (error) => {
  process.stderr.write(`remix-interop: server error: ${error?.stack ?? error}\n`)
  process.exit(1)
})

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`)
})
