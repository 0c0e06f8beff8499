"""Conversations: private chats with the AI assistant, behind the provider port."""
