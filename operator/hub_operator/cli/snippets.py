"""Connection snippets written beside a client's certificate: a runnable Python/pika client and a Java one
(RabbitMQ Java client, PKCS#12 keystore), both with EXTERNAL authentication over mutual TLS."""

from __future__ import annotations

import json
from collections.abc import Mapping

from hub_dispatcher.protocol import HUB_EXCHANGE, QueueKind
from hub_operator.cli.session import VhostAccess

PYTHON_FILE = "connect_pika.py"
JAVA_FILE = "HubConnection.java"


def python_snippet(client_id: str, access: VhostAccess, files: Mapping[str, str]) -> str:
    queues = {kind.value: access.protocol.client_queue(client_id, kind) for kind in QueueKind}
    return f'''\
"""Connect to Hub Santé vhost {access.vhost} as {client_id} (written by `hubctl credentials`).

    pip install pika
    python {PYTHON_FILE}            # connects, shows how many messages wait in each queue
    python {PYTHON_FILE} --consume  # prints and acknowledges incoming messages until Ctrl-C
"""

import pathlib
import ssl
import sys

import pika
from pika.credentials import ExternalCredentials

HERE = pathlib.Path(__file__).resolve().parent
HOST, PORT, VHOST = {access.host!r}, {access.port!r}, {access.vhost!r}
#: Publish every message to this exchange with this routing key (your client id; protocol {access.profile.value!r}),
#: as persistent (delivery_mode=2) application/json or application/xml.
EXCHANGE, ROUTING_KEY = {HUB_EXCHANGE!r}, {access.protocol.publish_routing_key(client_id)!r}
#: Your queues: messages for you, acknowledgements (RC-REF) of what you sent, hub error reports.
QUEUES = {json.dumps(queues)}


def connection_parameters() -> pika.ConnectionParameters:
    context = ssl.create_default_context(cafile=str(HERE / {files["brokerCa"]!r}))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(HERE / {files["cert"]!r}), str(HERE / {files["key"]!r}))
    return pika.ConnectionParameters(
        host=HOST,
        port=PORT,
        virtual_host=VHOST,
        ssl_options=pika.SSLOptions(context, server_hostname={access.tls_server_name!r}),
        credentials=ExternalCredentials(),  # the broker takes the username from the certificate CN
        heartbeat=30,
    )


def main() -> None:
    connection = pika.BlockingConnection(connection_parameters())
    channel = connection.channel()
    for kind, queue in QUEUES.items():
        waiting = channel.queue_declare(queue, passive=True).method.message_count
        print(f"{{queue}}: {{waiting}} message(s) waiting")
    if "--consume" in sys.argv:
        def on_message(channel, method, properties, body):
            print(f"{{method.routing_key}} ({{properties.content_type}}): {{body[:500]!r}}")
            channel.basic_ack(method.delivery_tag)

        for queue in QUEUES.values():
            channel.basic_consume(queue, on_message)
        try:
            channel.start_consuming()
        except KeyboardInterrupt:
            pass
    connection.close()


if __name__ == "__main__":
    main()
'''


def java_snippet(client_id: str, access: VhostAccess, files: Mapping[str, str]) -> str:
    queues = ", ".join(f'"{access.protocol.client_queue(client_id, kind)}"' for kind in QueueKind)
    return f'''\
// Connect to Hub Santé vhost {access.vhost} as {client_id} (written by `hubctl credentials`).
// Needs com.rabbitmq:amqp-client 5.x. The keystore holds your key and certificate; the broker's CA is read
// from {files["brokerCa"]}. The broker takes your username from the certificate CN (SASL EXTERNAL).
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.DefaultSaslConfig;
import com.rabbitmq.client.MessageProperties;
import java.io.FileInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public final class HubConnection {{
    static final String HOST = "{access.host}";
    static final int PORT = {access.port};
    static final String VHOST = "{access.vhost}";
    /** Publish to this exchange with this routing key (protocol {access.profile.value}), persistent. */
    static final String EXCHANGE = "{HUB_EXCHANGE}";
    static final String ROUTING_KEY = "{access.protocol.publish_routing_key(client_id)}";
    /** Your queues: messages, acknowledgements (RC-REF), hub error reports. */
    static final String[] QUEUES = {{{queues}}};

    public static Connection connect(Path folder) throws Exception {{
        char[] password = Files.readString(folder.resolve("{files["keystorePassword"]}")).trim().toCharArray();
        KeyStore keyStore = KeyStore.getInstance("PKCS12");
        try (FileInputStream in = new FileInputStream(folder.resolve("{files["keystore"]}").toFile())) {{
            keyStore.load(in, password);
        }}
        KeyManagerFactory keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keys.init(keyStore, password);

        KeyStore trustStore = KeyStore.getInstance(KeyStore.getDefaultType());
        trustStore.load(null, null);
        try (FileInputStream in = new FileInputStream(folder.resolve("{files["brokerCa"]}").toFile())) {{
            trustStore.setCertificateEntry("hub-broker-ca",
                (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in));
        }}
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(trustStore);

        SSLContext tls = SSLContext.getInstance("TLSv1.2");
        tls.init(keys.getKeyManagers(), trust.getTrustManagers(), null);

        ConnectionFactory factory = new ConnectionFactory();
        factory.setHost(HOST);
        factory.setPort(PORT);
        factory.setVirtualHost(VHOST);
        factory.useSslProtocol(tls);
        factory.enableHostnameVerification();  // the broker certificate must name {access.tls_server_name}
        factory.setSaslConfig(DefaultSaslConfig.EXTERNAL);
        return factory.newConnection("{client_id}");
    }}

    public static void main(String[] args) throws Exception {{
        try (Connection connection = connect(Path.of(args.length > 0 ? args[0] : "."));
             Channel channel = connection.createChannel()) {{
            for (String queue : QUEUES) {{
                System.out.println(queue + ": " + channel.queueDeclarePassive(queue).getMessageCount() + " message(s) waiting");
            }}
            // channel.basicPublish(EXCHANGE, ROUTING_KEY, MessageProperties.PERSISTENT_BASIC.builder()
            //     .contentType("application/json").build(), json.getBytes(StandardCharsets.UTF_8));
        }}
    }}
}}
'''
