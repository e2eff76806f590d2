from django.urls import path

from . import views

urlpatterns = [
    path("books/<int:pk>/", views.book_detail),
    path("abooks/<int:pk>/", views.abook_detail),
    path("stream/", views.stream),
    path("fail/", views.fail),
    path("headers/", views.headers),
    path("conc/<str:name>/", views.conc),
]
