// Preloaded (node --require) into a program that test/readme.test.ts runs
// from the README: a listen() on a TCP port listens on a free port of
// 127.0.0.1 instead, so that a README program written for port 3000 runs
// beside anything else on the machine.
'use strict'
const net = require('node:net')

const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  const [options] = args
  if (typeof options === 'number') {
    args[0] = 0
    if (typeof args[1] === 'string') args[1] = '127.0.0.1'
  } else if (options !== null && typeof options === 'object' && 'port' in options) {
    args[0] = { ...options, port: 0, host: '127.0.0.1' }
  }
  return listen.apply(this, args)
}
