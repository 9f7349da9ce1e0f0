import { describe, expect, it } from 'vitest';
import { VirtError } from '@virtbus/api-contract';
import { libvirtdAddress, parseLibvirtUri } from './client.js';

describe('parseLibvirtUri', () => {
  it('reads qemu+tls:// as libvirtd\'s TLS listener with libvirt\'s x509 layout, and sends libvirtd the URI without transport, host or client parameters', () => {
    const parsed = parseLibvirtUri('qemu+tls://kvm1.example.org/system');
    expect(parsed).toEqual({
      uri: 'qemu:///system',
      tls: { host: 'kvm1.example.org', port: 16514, caFile: '/etc/pki/CA/cacert.pem', certFile: '/etc/pki/libvirt/clientcert.pem', keyFile: '/etc/pki/libvirt/private/clientkey.pem', verify: true },
    });
    expect(libvirtdAddress(parsed)).toBe('kvm1.example.org:16514 (tls)');
  });

  it('takes a port, pkipath and no_verify=1, and keeps the driver\'s own parameters', () => {
    expect(parseLibvirtUri('xen+tls://[::1]:17000/system?pkipath=/srv/pki&no_verify=1&mode=legacy')).toEqual({
      uri: 'xen:///system',
      tls: { host: '::1', port: 17000, caFile: '/srv/pki/cacert.pem', certFile: '/srv/pki/clientcert.pem', keyFile: '/srv/pki/clientkey.pem', verify: false },
    });
    expect(parseLibvirtUri('test+unix:///default?socket=/run/x/libvirt-sock')).toEqual({ socket: '/run/x/libvirt-sock', uri: 'test:///default' });
  });

  it('refuses the transports it does not speak', () => {
    for (const uri of ['qemu+ssh://host/system', 'qemu+tcp://host/system', 'qemu+libssh2://host/system']) expect(() => parseLibvirtUri(uri)).toThrow(VirtError);
  });
});
