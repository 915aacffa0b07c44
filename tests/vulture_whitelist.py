"""Names the dead-code check (vulture, `make lint`) cannot see used: read by libraries, passed as boto3
keyword arguments, or requested for a side effect. Each line says who uses it."""

from vulture.whitelist_utils import Whitelist

_ = Whitelist()

_.command_size_limits  # aiosmtpd's SMTP reads it for every command line
_.proxy_data  # aiosmtpd's Session attribute, read by session handlers
_.batch_write_item  # the bench's stand-in for botocore's DynamoDB client method
_.QueueUrl  # keyword argument of a botocore call the bench fakes
_.RequestItems  # keyword argument of a botocore call the bench fakes
_.higher_is_better  # a field of the bench's table rows, read through dataclasses.asdict
_.moto_server  # a fixture requested for its side effect (the AWS stand-in running)
_.fold  # the email package folds a header object by calling its fold() (mailrelay.mime_builder.AddressField)
_.readable  # io.RawIOBase protocol: io.BufferedReader calls it (mailrelay.message_data)
_.seekable  # io.RawIOBase protocol: botocore asks before rewinding a body for a retry
_.tell  # io.RawIOBase protocol: botocore reads a body's start position
_._create_envelope  # aiosmtpd's documented factory hook, called for every new transaction
_.should_exit  # uvicorn's Server reads it to stop serving (local_stack.viewer.ViewerServer.stop)
_.binary_location  # Selenium's ChromeOptions: which browser chromedriver starts (tests/viewer/test_browser.py)
_.latency_ms  # a field of a webhook delivery attempt, shown by GET /v1/webhooks/{id}/deliveries (model_dump)
_.exc_text  # logging.Formatter prints a record's exc_text when it carries no exc_info (the session fuzzer)
_.teardown  # hypothesis calls a RuleBasedStateMachine's teardown() after each example (the session fuzzer)
