"""Secrets Manager and SSM Parameter Store through Powertools Parameters (cached, refreshable).

Powertools Parameters loads boto3 (and AppConfig support) when imported: it is imported on first use,
so a cold start does not pay for it before the first message needs an upstream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from mailrelay.adapters.aws import lazy
from mailrelay.ports import Credentials, StorageError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider


class _SecretShape(BaseModel):
    model_config = ConfigDict(extra="ignore")

    username: str
    password: str


class SmtpCredentialStore:
    """Credentials kept as JSON ``{"username": ..., "password": ...}`` in a Secrets Manager secret."""

    def __init__(self, max_age: int = 300, client: Any | None = None) -> None:
        self._max_age = max_age
        self._client = lazy("secretsmanager", client)
        self._provider: SecretsProvider | None = None

    def get(self, secret_id: str, *, refresh: bool = False) -> Credentials:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

        if self._provider is None:
            self._provider = SecretsProvider(boto3_client=self._client())
        try:
            value = self._provider.get(secret_id, max_age=self._max_age, transform="json", force_fetch=refresh)
            shape = _SecretShape.model_validate(value)
        except (GetParameterError, TransformParameterError) as exc:
            raise StorageError(f"Secrets Manager GetSecretValue {secret_id} failed: {type(exc).__name__}") from exc
        except ValidationError:  # never echo the value: it holds the password
            raise StorageError(f"secret {secret_id} is not JSON with string fields username and password") from None
        return Credentials(shape.username, shape.password)


class SsmParameterReader:
    def __init__(self, client: Any | None = None) -> None:
        self._client = lazy("ssm", client)

    def read(self, name: str) -> str:
        from aws_lambda_powertools.utilities.parameters import SSMProvider
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        provider = SSMProvider(boto3_client=self._client())
        try:
            value = provider.get(name, decrypt=True, force_fetch=True)
        except GetParameterError as exc:
            raise StorageError(f"SSM GetParameter {name} failed: {type(exc).__name__}") from exc
        return str(value)
