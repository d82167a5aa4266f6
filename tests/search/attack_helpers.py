"""API clients for the tests of hostile input (issue 11): logged in or by token, and raw JSON bodies."""


from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def api(user=None, token=False) -> APIClient:
    client = APIClient()
    if user is not None:
        if token:
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        else:
            client.force_login(user)
    return client


def raw_json(client: APIClient, path: str, body: str, method: str = "post"):
    return getattr(client, method)(path, data=body.encode("utf-8", "surrogatepass"), content_type="application/json")
